import { attr } from "../ir/attribute";
import type { Value } from "../ir/value";
import type { GradBuilder } from "../autodiff/grad-builder";
import type { DataType } from "../onnx/dtype";

/** The additive mask value of masked keys: float32's lowest finite value, as Hugging Face uses, so a fully masked row gives a uniform softmax instead of NaN. */
const MASKED = -3.4028234663852886e38;

/** Values every cached layer shares: the past length, the mask over past and current keys, and per-row positions. */
export interface CacheContext {
  /** int64 scalar: tokens already in the cache. */
  pastLength: Value;
  /** float [batch, 1, sequence, past + sequence]: 0 where query i may see key j, the lowest float elsewhere. */
  mask: Value;
  /** int64 [batch, sequence]: the position of each current token. */
  positions: Value;
}

/**
 * Builds the mask and positions of a cached step from `input_ids` [batch,
 * sequence] and `attention_mask` [batch, past + sequence]. Query i sees key
 * j when j <= past + i and attention_mask[b, j] is 1. Positions count the
 * real tokens of each row before the current one (cumsum(mask) - 1, clipped
 * at 0), as Hugging Face's generate does, so a left-padded row gets the
 * same positions as the row alone.
 */
export function buildCacheContext(b: GradBuilder, inputIds: Value, attentionMask: Value, dtype: DataType): CacheContext {
  const sequence = b.op("Gather", [b.shape(inputIds), b.intScalar(1)]);
  const total = b.op("Gather", [b.shape(attentionMask), b.intScalar(1)]);
  const pastLength = b.op("Sub", [total, sequence]);

  const queryPositions = b.unsqueeze(b.op("Range", [pastLength, total, b.intScalar(1)]), [1]);
  const keyPositions = b.unsqueeze(b.op("Range", [b.intScalar(0), total, b.intScalar(1)]), [0]);
  const causal = b.unsqueeze(b.op("LessOrEqual", [keyPositions, queryPositions]), [0, 1]);
  const real = b.unsqueeze(b.op("Equal", [attentionMask, b.intScalar(1)]), [1, 2]);
  const allowed = b.op("And", [causal, real]);
  const mask = b.op("Where", [allowed, b.scalar(0, dtype), b.scalar(MASKED, dtype)]);

  const counted = b.op("CumSum", [attentionMask, b.intScalar(1)]);
  const everyPosition = b.op("Max", [b.op("Sub", [counted, b.intScalar(1)]), b.intScalar(0)]);
  const positions = b.op("Slice", [everyPosition, b.unsqueeze(pastLength, [0]), b.unsqueeze(total, [0]), b.ints([1])]);
  return { pastLength, mask, positions };
}

/** Casts int64 positions to the float type of a rotary table. */
export function floatPositions(b: GradBuilder, positions: Value, dtype: DataType): Value {
  return b.op("Cast", [positions], [attr.int("to", dtype)]);
}

