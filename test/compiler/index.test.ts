import { spawnSync } from "node:child_process";
import * as path from "node:path";
import * as peftc from "../../compiler";

describe("package entry point", () => {
  it("exports the loader, IR and inference", () => {
    expect(typeof peftc.loadModel).toBe("function");
    expect(typeof peftc.saveModel).toBe("function");
    expect(typeof peftc.inferShapes).toBe("function");
    expect(typeof peftc.validateModel).toBe("function");
    expect(typeof peftc.builder.ModelBuilder).toBe("function");
  });

  it("resolves from the compiled package", () => {
    // `main` in package.json points at dist/, which `npm test` builds first.
    const root = path.resolve(__dirname, "../..");
    const result = spawnSync(process.execPath, ["-e", `const p = require(${JSON.stringify(root)}); process.stdout.write(typeof p.loadModel);`], {
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("function");
  });
});
