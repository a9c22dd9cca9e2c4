import { unary } from "./unary";

/** y = sin x: dx = dy · cos x. Rotary tables reach it when their frequencies are trainable. */
export const sin = unary((b, dy, x) => b.op("Mul", [dy, b.op("Cos", [x])]));

/** y = cos x: dx = -dy · sin x. */
export const cos = unary((b, dy, x) => b.op("Neg", [b.op("Mul", [dy, b.op("Sin", [x])])]));
