/** `deno task bench`: runs every benchmark in bench/ (none yet; see bench/README.md). */
if (import.meta.main) {
  console.log("no benchmarks yet: they land with image pull, container start and pod start");
}
