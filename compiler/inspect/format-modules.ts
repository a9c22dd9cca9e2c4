import type { MlpBlockJson, ModuleJson } from "../match";
import type { ModulesSummary } from "./modules";

const groupDigits = (value: number): string => value.toLocaleString("en-US");

/** Checks whether a module is on the output side: the head, or a module whose path sits under `head` (its norm). */
function isHeadModule(module: ModuleJson): boolean {
  return module.layer === null && (module.role === "head" || module.path.startsWith("head."));
}

/** Labels a layer group, with the activation of the layer's MLP block when discovery found one. */
function layerLabel(layer: number, mlp: readonly MlpBlockJson[]): string {
  const block = mlp.find((each) => each.layer === layer);
  if (!block) return `layer ${layer}`;
  const { activation } = block;
  let description: string = activation.function;
  if (activation.function === "unknown") description = `unknown (${activation.ops.join(", ") || "no ops"})`;
  if (activation.gated) description += ", gated";
  return `layer ${layer}  (mlp activation: ${description})`;
}

/**
 * Splits modules into the printed groups: modules outside the layers
 * (embeddings, the final norm, a pooler), then each layer by index, then the
 * head. Each group keeps the graph order of discovery.
 */
function groupModules(modules: readonly ModuleJson[], mlp: readonly MlpBlockJson[]): { label: string; modules: ModuleJson[] }[] {
  const outside = modules.filter((module) => module.layer === null && !isHeadModule(module));
  const head = modules.filter(isHeadModule);
  const layers = [...new Set(modules.flatMap((module) => (module.layer === null ? [] : [module.layer])))].sort((a, b) => a - b);
  const groups = [{ label: "outside layers", modules: outside }];
  for (const layer of layers) groups.push({ label: layerLabel(layer, mlp), modules: modules.filter((module) => module.layer === layer) });
  groups.push({ label: "head", modules: head });
  return groups.filter((group) => group.modules.length > 0);
}

/** Says which parts of a module's name came from structure instead of names, and what it is tied to. */
function moduleNotes(module: ModuleJson): string {
  const notes: string[] = [];
  const roleFromStructure = module.roleFrom === "structure";
  const layerFromStructure = module.layerFrom === "structure";
  if (roleFromStructure && layerFromStructure) notes.push("role and layer from structure");
  else if (roleFromStructure) notes.push("role from structure");
  else if (layerFromStructure) notes.push("layer from structure");
  if (module.tiedTo !== null) notes.push(`tied to ${module.tiedTo}`);
  return notes.join(", ");
}

/**
 * Renders the module tree of `peftc inspect`: one aligned row per module
 * (path, role, original name, weight shape, parameter count, notes) under
 * its group, the totals and the unrecognised entries.
 */
export function formatModuleTree(summary: ModulesSummary): string[] {
  if (summary.failure !== undefined) return [`modules     ${summary.failure}`];

  const lines = [`modules (${groupDigits(summary.count)})`];
  if (summary.modules.length === 0) lines.push("  (none)");
  const cells = new Map(
    summary.modules.map((module) => [
      module,
      {
        path: module.path,
        role: module.role ?? "?",
        name: module.originalName,
        shape: module.weightShape ? `[${module.weightShape.join(", ")}]` : "-",
        count: groupDigits(module.parameterCount),
        notes: moduleNotes(module),
      },
    ]),
  );
  const widthOf = (key: "path" | "role" | "name" | "shape" | "count"): number => Math.max(0, ...[...cells.values()].map((cell) => cell[key].length));
  const widths = { path: widthOf("path"), role: widthOf("role"), name: widthOf("name"), shape: widthOf("shape"), count: widthOf("count") };
  for (const group of groupModules(summary.modules, summary.mlp ?? [])) {
    lines.push(`  ${group.label}`);
    for (const module of group.modules) {
      const cell = cells.get(module)!;
      const row = [cell.path.padEnd(widths.path), cell.role.padEnd(widths.role), cell.name.padEnd(widths.name), cell.shape.padEnd(widths.shape), cell.count.padStart(widths.count)];
      if (cell.notes) row.push(cell.notes);
      lines.push(`    ${row.join("  ").trimEnd()}`);
    }
  }
  lines.push(
    `  total: ${groupDigits(summary.count)} modules, ${groupDigits(summary.parametersInModules)} parameters in modules, ${groupDigits(summary.parametersOutsideModules)} parameters outside modules`,
  );

  lines.push("", summary.unrecognised.length === 0 ? "unrecognised (none)" : `unrecognised (${groupDigits(summary.unrecognised.length)})`);
  const nameWidth = Math.max(0, ...summary.unrecognised.map((entry) => entry.name.length));
  const kindWidth = Math.max(0, ...summary.unrecognised.map((entry) => entry.kind.length));
  for (const entry of summary.unrecognised) lines.push(`  ${entry.kind.padEnd(kindWidth)}  ${entry.name.padEnd(nameWidth)}  ${entry.reason}`);
  return lines;
}
