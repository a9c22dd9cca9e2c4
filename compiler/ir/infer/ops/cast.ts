import { DataType, isFloatType, isIntegerType } from "../../../onnx/dtype";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "../../../onnx/half";
import { Dim } from "../../types";
import { InferenceContext } from "../context";
import { KnownData, mapBroadcast } from "../known-data";
import { RuleDefinition } from "../registry";

/**
 * Cast and CastLike: the input's shape with a new element type. Known
 * values convert as onnxruntime 1.31 casts them: integers wrap modulo 2^bits
 * into narrower integer types, floats truncate toward zero, and float16 and
 * float round to nearest even. bfloat16, which the 1.31 CPU provider does
 * not cast to, rounds to nearest even as well. A value whose result depends
 * on the platform (a float out of the target's range, NaN or infinity to an
 * integer) becomes unknown.
 */

/** Bit width and signedness of the integer types whose conversions are tracked. */
const INTEGER_TYPES = new Map<DataType, { bits: number; signed: boolean }>([
  [DataType.INT8, { bits: 8, signed: true }],
  [DataType.UINT8, { bits: 8, signed: false }],
  [DataType.INT16, { bits: 16, signed: true }],
  [DataType.UINT16, { bits: 16, signed: false }],
  [DataType.INT32, { bits: 32, signed: true }],
  [DataType.UINT32, { bits: 32, signed: false }],
  [DataType.INT64, { bits: 64, signed: true }],
  [DataType.UINT64, { bits: 64, signed: false }],
]);

/** Wraps an integer into the range of a `bits`-wide type, as two's complement truncation does. */
function wrapInteger(value: number, bits: number, signed: boolean): number {
  const modulus = 2 ** bits;
  const unsigned = ((value % modulus) + modulus) % modulus;
  return signed && unsigned >= modulus / 2 ? unsigned - modulus : unsigned;
}

/** Converts one known number to an integer type, or returns null where the result is not exactly known. */
function toInteger(value: number, to: DataType, fromFloat: boolean): Dim {
  const target = INTEGER_TYPES.get(to);
  if (!target || !Number.isFinite(value)) return null;
  const whole = Math.trunc(value) + 0; // + 0 turns -0 into 0
  const low = target.signed ? -(2 ** (target.bits - 1)) : 0;
  const high = target.signed ? 2 ** (target.bits - 1) - 1 : 2 ** target.bits - 1;
  if (whole >= low && whole <= high && Number.isSafeInteger(whole)) return whole;
  // Int64 values past 2^53 are already saturated where they are read, so wrapping them would invent bits.
  if (fromFloat || target.bits === 64 || !Number.isSafeInteger(whole) || Math.abs(whole) === Number.MAX_SAFE_INTEGER) return null;
  return wrapInteger(whole, target.bits, target.signed);
}

/** Converts one known number to a float type, rounding as the narrower type stores it. */
function toFloat(value: number, to: DataType): Dim {
  switch (to) {
    case DataType.DOUBLE:
      return value;
    case DataType.FLOAT:
      return Math.fround(value);
    case DataType.FLOAT16:
      return float16ToFloat32(float32ToFloat16(value));
    case DataType.BFLOAT16:
      return bfloat16ToFloat32(float32ToBfloat16(value));
    default:
      return null;
  }
}

/**
 * Symbolic values are dimensions: non-negative and below 2^31 (see
 * UNBOUNDED in dims.ts), so they stay exact in 32- and 64-bit integers and
 * in double. Narrower types could wrap or round them, so they become unknown.
 * NOTE: float keeps them too, although float32 is exact only up to 2^24.
 * Exporters cast sizes to float and back (an optimized BERT export clamps
 * its input shape with a float Min), and a dimension past 2^24 would round.
 */
const SYMBOLIC_SAFE = new Set<DataType>([DataType.INT32, DataType.UINT32, DataType.INT64, DataType.UINT64, DataType.FLOAT, DataType.DOUBLE]);

function convertValue(value: Dim, to: DataType, fromFloat: boolean): Dim {
  if (value === null) return null;
  if (typeof value === "string") return SYMBOLIC_SAFE.has(to) ? value : null;
  if (to === DataType.BOOL) return Number(value !== 0);
  if (isIntegerType(to)) return toInteger(value, to, fromFloat);
  return toFloat(value, to);
}

function castData(data: KnownData | undefined, from: DataType, to: DataType): KnownData | undefined {
  if (!isIntegerType(to) && !isFloatType(to) && to !== DataType.BOOL) return undefined;
  const fromFloat = isFloatType(from);
  return mapBroadcast([data], ([value]) => convertValue(value, to, fromFloat));
}

function castRule(ctx: InferenceContext): void {
  const to = ctx.requireInt("to");
  if (DataType[to] === undefined || to === DataType.UNDEFINED) {
    ctx.fail(`attribute "to" is ${to}, which is not an ONNX element type`, "Fix the attribute in the model.");
  }
  ctx.setOutput(0, to, ctx.shape(0), castData(ctx.data(0), ctx.elemType(0), to));
}

function castLikeRule(ctx: InferenceContext): void {
  const to = ctx.elemType(1);
  ctx.setOutput(0, to, ctx.shape(0), castData(ctx.data(0), ctx.elemType(0), to));
}

export const castRules: RuleDefinition[] = [
  // Cast-1 names the target type with a string attribute, which this rule does not read.
  { opType: "Cast", since: 6, infer: castRule },
  { opType: "CastLike", since: 15, infer: castLikeRule },
];
