import { DataType } from "../../onnx/dtype";
import { Value } from "../../ir/value";
import { Scope } from "../model-builder";
import { cast, floatScalar, greater, int64Scalar, mul, or, range, sub, unsqueeze, where, equal } from "../ops";

/**
 * The value added to the attention score of a blocked key: the lowest
 * float32, as Hugging Face models use (torch.finfo(torch.float32).min).
 * Unlike -inf it keeps a fully blocked row finite, so its softmax is
 * uniform instead of NaN.
 */
export const MASKED_SCORE = -3.4028234663852886e38;

/**
 * Builds the additive mask of a decoder, float32 [batch, 1, sequence,
 * sequence]: 0 where query i may attend to key j (j <= i and
 * attention_mask[b, j] is 1), MASKED_SCORE elsewhere. `sequence` is an
 * int64 scalar, usually `dimension(input_ids, 1)`.
 */
export function causalAttentionMask(scope: Scope, attentionMask: Value, sequence: Value): Value {
  const positions = range(scope, int64Scalar(scope, 0), sequence, int64Scalar(scope, 1));
  const queryPositions = unsqueeze(scope, positions, [1]);
  const keyPositions = unsqueeze(scope, positions, [0]);
  const future = unsqueeze(scope, greater(scope, keyPositions, queryPositions), [0, 1]);
  const padding = unsqueeze(scope, equal(scope, attentionMask, int64Scalar(scope, 0)), [1, 2]);
  const blocked = or(scope, future, padding);
  return where(scope, blocked, floatScalar(scope, MASKED_SCORE), floatScalar(scope, 0));
}

/**
 * Builds the additive padding mask of an encoder, float32 [batch, 1, 1,
 * sequence], as BERT computes it: (1 - attention_mask) · MASKED_SCORE.
 */
export function paddingAttentionMask(scope: Scope, attentionMask: Value): Value {
  const expanded = cast(scope, unsqueeze(scope, attentionMask, [1, 2]), DataType.FLOAT);
  return mul(scope, sub(scope, floatScalar(scope, 1), expanded), floatScalar(scope, MASKED_SCORE));
}
