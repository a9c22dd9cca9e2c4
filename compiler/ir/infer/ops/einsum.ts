import { Dim, formatShape } from "../../types";
import { InferenceContext } from "../context";
import { broadcastShapes } from "../dims";
import { RuleDefinition } from "../registry";
import { commonElemType } from "./common";

/**
 * Einsum: each operand's subscripts name its axes, and "..." is the
 * broadcast axes. The output has the subscripts after "->". Without "->"
 * it has the broadcast axes, then every subscript used once in
 * alphabetical order.
 */

interface Operand {
  letters: string[];
  ellipsis: boolean;
}

function parseTerm(ctx: InferenceContext, term: string): Operand {
  const trimmed = term.trim();
  const parts = trimmed.split("...");
  if (parts.length > 2) ctx.fail(`subscripts "${trimmed}" have more than one ellipsis`);
  const letters = parts.join("").split("");
  if (letters.some((letter) => !/[A-Za-z]/.test(letter))) ctx.fail(`subscripts "${trimmed}" contain a character other than a letter or "..."`);
  return { letters: parts.length === 2 ? [...parts[0].split(""), "...", ...parts[1].split("")] : letters, ellipsis: parts.length === 2 };
}

/** Binds letters to sizes and collects the broadcast axes each operand's ellipsis covers. */
function bindSizes(ctx: InferenceContext, operands: Operand[], shapes: Dim[][]): { sizes: Map<string, Dim>; broadcast: Dim[] } {
  const sizes = new Map<string, Dim>();
  const ellipsisShapes: Dim[][] = [];
  operands.forEach((operand, i) => {
    const shape = shapes[i];
    const named = operand.letters.filter((letter) => letter !== "...").length;
    if (operand.ellipsis ? shape.length < named : shape.length !== named) {
      ctx.fail(`operand ${i} ${formatShape(shape)} does not fit subscripts "${operand.letters.join("")}"`);
    }
    const covered = shape.length - named;
    let axis = 0;
    for (const letter of operand.letters) {
      if (letter === "...") {
        ellipsisShapes.push(shape.slice(axis, axis + covered));
        axis += covered;
        continue;
      }
      const dim = shape[axis++];
      const known = sizes.get(letter);
      if (known === undefined || known === null || (typeof dim === "number" && dim !== 1)) sizes.set(letter, dim);
    }
  });
  const broadcast = broadcastShapes(ellipsisShapes);
  if (typeof broadcast === "string") ctx.fail(`the "..." axes: ${broadcast}`);
  return { sizes, broadcast };
}

function einsumRule(ctx: InferenceContext): void {
  const equation = ctx.string("equation", "");
  const indices = ctx.node.inputs.map((_, i) => i);
  const elemType = commonElemType(ctx, indices);
  const shapes = indices.map((i) => ctx.shape(i));
  const [left, right] = equation.split("->");
  const operands = left.split(",").map((term) => parseTerm(ctx, term));
  if (operands.length !== indices.length) ctx.fail(`equation "${equation}" has ${operands.length} operands for ${indices.length} inputs`);
  if (shapes.some((shape) => !shape)) {
    ctx.setOutput(0, elemType, undefined);
    return;
  }
  const { sizes, broadcast } = bindSizes(ctx, operands, shapes as Dim[][]);
  let output: Operand;
  if (right !== undefined) {
    output = parseTerm(ctx, right);
  } else {
    const counts = new Map<string, number>();
    for (const operand of operands) for (const letter of operand.letters) if (letter !== "...") counts.set(letter, (counts.get(letter) ?? 0) + 1);
    const once = [...counts].filter(([, count]) => count === 1).map(([letter]) => letter).sort();
    const ellipsis = operands.some((operand) => operand.ellipsis);
    output = { letters: ellipsis ? ["...", ...once] : once, ellipsis };
  }
  const shape = output.letters.flatMap((letter) => {
    if (letter === "...") return broadcast;
    if (!sizes.has(letter)) ctx.fail(`output subscript "${letter}" does not appear in any input`);
    return [sizes.get(letter)!];
  });
  ctx.setOutput(0, elemType, shape);
}

export const einsumRules: RuleDefinition[] = [{ opType: "Einsum", since: 12, infer: einsumRule }];
