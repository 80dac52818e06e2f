import { describe, expect, it } from "../src/testing/bdd.ts";
import { datedSections, replaceSection, sectionOf } from "./lib.ts";

describe("replaceSection", () => {
  const report = "# R\n\nintro\n\n## A (old)\nold a\n\n## B\nb\n";

  it("replaces a section in the middle, keeping the ones after it", () => {
    expect(replaceSection(report, "## A", "## A (new)\nnew a\n")).toBe(
      "# R\n\nintro\n\n## A (new)\nnew a\n\n## B\nb\n",
    );
  });

  it("replaces the last section up to the end", () => {
    expect(replaceSection(report, "## B", "## B\nnew b")).toBe(
      "# R\n\nintro\n\n## A (old)\nold a\n\n## B\nnew b\n",
    );
  });

  it("appends a section the report does not have", () => {
    expect(replaceSection(report, "## C", "## C\nc\n")).toBe(report + "\n## C\nc\n");
    expect(replaceSection("", "## C", "## C\nc\n")).toBe("## C\nc\n");
  });

  it("matches a heading only at the start of a line", () => {
    expect(replaceSection("# R\n\nsee ## A here\n", "## A", "## A\na\n")).toBe(
      "# R\n\nsee ## A here\n\n## A\na\n",
    );
  });
});

describe("sectionOf", () => {
  it("finds a section up to the next heading, or says there is none", () => {
    const report = "# R\n\n## A (x)\na\n\n## B\nb\n";
    expect(sectionOf(report, "## A")).toBe("## A (x)\na\n");
    expect(sectionOf(report, "## B")).toBe("## B\nb\n");
    expect(sectionOf(report, "## C")).toBeUndefined();
  });
});

describe("datedSections", () => {
  it("keeps the hand-written, dated sections in order, and nothing else", () => {
    const report = "# R\n\n## Pull\np\n\n## 2026-12-04: A/B\nx\n\n## Reads\nr\n\n" +
      "## 2026-12-03: older\ny\n";
    expect(datedSections(report)).toEqual(["## 2026-12-04: A/B\nx\n", "## 2026-12-03: older\ny\n"]);
    expect(datedSections("# R\n\n## Pull\nsee ## 2026-12-04 below\n")).toEqual([]);
  });
});
