#!/usr/bin/env node
// Entry point of the `peftc` command: runs the compiled CLI from dist/.
"use strict";
let cli;
try {
  cli = require("../dist/runtime/cli/main.js");
} catch (error) {
  if (error && error.code === "MODULE_NOT_FOUND" && String(error.message).includes("dist/runtime/cli/main.js")) {
    process.stderr.write("peftc: the compiled CLI is missing; run `npm run build` in the peftc folder first.\n");
    process.exit(1);
  }
  throw error;
}
cli.exitOnBrokenPipe(process.stdout);
cli.runCli(process.argv.slice(2)).then((status) => {
  process.exitCode = status;
});
