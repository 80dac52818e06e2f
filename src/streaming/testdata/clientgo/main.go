// Command clientgo drives the k8scontainerd streaming server with the real client-go
// remotecommand and portforward packages (the code kubectl and crictl 1.26 use), for
// clientgo_interop_test.ts. It is not built by the repository: build it inside a cri-tools
// v1.26.1 checkout, whose vendor/ tree has client-go:
//
//	mkdir -p $CRITOOLS/cmd/interop && cp main.go $CRITOOLS/cmd/interop/
//	(cd $CRITOOLS && go build -mod=vendor -o /tmp/clientgo ./cmd/interop)
//	CLIENTGO_INTEROP_BIN=/tmp/clientgo scripts/deno test -A src/streaming
//
// Usage: clientgo exec|tty|pf URL
//   - exec: stdin "client-go stdin\n", stdout+stderr; prints them, the error and exit status.
//   - tty:  TTY with two terminal sizes (80x24, 160x48) on the resize stream.
//   - pf:   forwards a random local port to remote 8080 and prints "LOCAL <port>".
package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

type sizes struct{ n int }

func (s *sizes) Next() *remotecommand.TerminalSize {
	if s.n >= 2 {
		select {}
	}
	s.n++
	return &remotecommand.TerminalSize{Width: uint16(80 * s.n), Height: uint16(24 * s.n)}
}

func main() {
	u, _ := url.Parse(os.Args[2])
	switch os.Args[1] {
	case "exec", "tty":
		ex, err := remotecommand.NewSPDYExecutor(&restclient.Config{}, "POST", u)
		if err != nil {
			panic(err)
		}
		var out, errb bytes.Buffer
		opts := remotecommand.StreamOptions{Stdout: &out}
		if os.Args[1] == "exec" {
			opts.Stdin = strings.NewReader("client-go stdin\n")
			opts.Stderr = &errb
		} else {
			opts.Tty = true
			opts.TerminalSizeQueue = &sizes{}
		}
		err = ex.StreamWithContext(context.Background(), opts)
		fmt.Printf("stdout=%q stderr=%q err=%v\n", out.String(), errb.String(), err)
		if ce, ok := err.(interface{ ExitStatus() int }); ok {
			fmt.Println("exit status", ce.ExitStatus())
		}
	case "pf":
		tr, up, err := spdy.RoundTripperFor(&restclient.Config{})
		if err != nil {
			panic(err)
		}
		dialer := spdy.NewDialer(up, &http.Client{Transport: tr}, "POST", u)
		stop, ready := make(chan struct{}), make(chan struct{})
		fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, os.Stdout, os.Stderr)
		if err != nil {
			panic(err)
		}
		go func() {
			<-ready
			ports, _ := fw.GetPorts()
			fmt.Println("LOCAL", ports[0].Local)
		}()
		if err := fw.ForwardPorts(); err != nil {
			fmt.Println("forward error", err)
		}
	}
}
