import { Dim } from "../ir/types";
import { formatModuleTree } from "./format-modules";
import { ModelSummary, ValueSummary } from "./summary";

/** Formats a byte count with a binary unit (KiB, MiB, GiB). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const groupDigits = (value: number): string => value.toLocaleString("en-US");

function formatShape(shape: Dim[] | null): string {
  if (!shape) return "[?]";
  // An unknown size prints as "?", as JSON prints it as null.
  const known = (dim: Dim): boolean => dim !== null && !(typeof dim === "number" && !Number.isFinite(dim));
  return `[${shape.map((dim) => (known(dim) ? String(dim) : "?")).join(", ")}]`;
}

function valueRows(values: ValueSummary[]): string[] {
  if (values.length === 0) return ["  (none)"];
  const nameWidth = Math.max(...values.map((value) => value.name.length));
  const typeWidth = Math.max(...values.map((value) => value.dtype.length));
  return values.map((value) => {
    const row = `  ${value.name.padEnd(nameWidth)}  ${value.dtype.padEnd(typeWidth)}  ${formatShape(value.shape)}`;
    return value.hasDefault ? `${row}  (optional: an initializer gives its default)` : row;
  });
}

/** Renders the summary as the text `peftc inspect` prints. */
export function formatSummary(summary: ModelSummary): string {
  const lines: string[] = [];
  const producer = [summary.producer.name, summary.producer.version].filter(Boolean).join(" ") || "(not recorded)";
  const graph = summary.graph;
  lines.push(`model       ${summary.file} (${formatBytes(summary.fileBytes)})`);
  lines.push(`producer    ${producer}`);
  lines.push(`ir version  ${summary.irVersion}`);
  lines.push(`opsets      ${summary.opsets.map((opset) => `${opset.domain} ${opset.version}`).join(", ")}`);
  lines.push(
    `graph       ${graph.name || "(unnamed)"}: ${groupDigits(graph.nodes)} nodes (+${groupDigits(graph.nodesInSubgraphs)} in subgraphs, +${groupDigits(graph.nodesInFunctions)} in functions), ${groupDigits(graph.initializers)} initializers (${groupDigits(graph.initializersInSubgraphs)} in subgraphs)`,
  );
  if (graph.functions.length > 0) lines.push(`functions   ${graph.functions.join(", ")}`);
  lines.push("", "inputs", ...valueRows(summary.inputs), "", "outputs", ...valueRows(summary.outputs), "");
  lines.push(...formatModuleTree(summary.modules), "");

  const dtypes = Object.entries(summary.parameters.byDtype)
    .map(([dtype, count]) => `${dtype} ${groupDigits(count)}`)
    .join(", ");
  lines.push(`parameters  ${groupDigits(summary.parameters.count)} (floating-point initializer elements)`);
  lines.push(`weights     ${formatBytes(summary.parameters.bytes)} in initializers${dtypes ? ` (elements by type: ${dtypes})` : ""}`);
  if (summary.externalData.length === 0) {
    lines.push("external    none: all weights are inside the model file");
  } else {
    for (const file of summary.externalData) {
      const state = file.exists ? file.path : `MISSING (expected at ${file.path})`;
      lines.push(`external    ${file.location}: ${groupDigits(file.tensors)} tensors, ${formatBytes(file.bytes)}, ${state}`);
    }
  }

  const shapes = summary.shapeInference;
  lines.push(
    `shapes      ${groupDigits(shapes.typed)} node outputs typed by inference (${groupDigits(shapes.incomplete)} with unknown dims, ${groupDigits(shapes.untyped)} untyped)`,
  );
  if (shapes.unsupportedOps.length > 0) lines.push(`            no shape rule for: ${shapes.unsupportedOps.join(", ")}`);
  for (const failure of shapes.failures.slice(0, 3)) lines.push(`            failed: ${failure}`);
  if (shapes.failures.length > 3) lines.push(`            … and ${shapes.failures.length - 3} more failures (all of them in --json)`);
  if (shapes.conflicts > 0) lines.push(`            ${groupDigits(shapes.conflicts)} declared types disagree with inference (declared kept)`);

  const opWidth = Math.max(0, ...summary.ops.map((entry) => entry.op.length));
  lines.push("", `ops (${summary.ops.length} kinds)`);
  for (const entry of summary.ops) lines.push(`  ${entry.op.padEnd(opWidth)}  ${groupDigits(entry.count)}`);
  if (summary.warnings.length > 0) {
    lines.push("", `warnings (${summary.warnings.length})`);
    for (const warning of summary.warnings.slice(0, 5)) lines.push(`  ${warning}`);
    if (summary.warnings.length > 5) lines.push(`  … and ${summary.warnings.length - 5} more like these`);
  }
  return lines.join("\n");
}
