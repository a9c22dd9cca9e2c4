// Rewrites the golden module lists under golden/ from the current matcher.
// Run from the repository root after an intended change to compiler/match:
//
//   npx tsx test/compiler/match/update-golden.ts
//
// then review the diff: layer counts, which projections exist and their
// shapes should agree with fixtures/README.md and the corpus README.
import * as fs from "node:fs";
import { discoverModules, discoveryToJson } from "../../../compiler/match";
import { GOLDEN_DIR, corpusGoldenModels, fixtureModels, goldenPath, loadGoldenModel } from "./golden-models";

fs.mkdirSync(GOLDEN_DIR, { recursive: true });
for (const model of [...fixtureModels(), ...corpusGoldenModels()]) {
  const json = discoveryToJson(discoverModules(loadGoldenModel(model)));
  fs.writeFileSync(goldenPath(model), JSON.stringify(json, null, 2) + "\n");
  process.stdout.write(`${model.key}: ${json.modules.length} modules, ${json.unrecognised.length} unrecognised\n`);
}
