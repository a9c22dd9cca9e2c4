import type * as ort from "onnxruntime-node";
import { type Row, checkRows, sequentialBatches } from "../data/batches";
import { type ArtifactFolder, feedsFor, scalar } from "./artifacts";
import { releaseOutputs } from "./placement";

/** Loss over a held-out set, averaged over every counted label, and its perplexity exp(loss). */
export interface EvalResult {
  loss: number;
  perplexity: number;
  countedTokens: number;
}

/**
 * Runs eval.onnx (no dropout) over `rows` in order. Each batch's mean loss
 * is weighted by its counted labels, so the result equals the mean over
 * the whole set, whatever the batch size.
 */
export async function evaluate(artifacts: ArtifactFolder, params: Record<string, ort.Tensor>, rows: readonly Row[], batchSize: number): Promise<EvalResult> {
  const labels = artifacts.labelTarget;
  checkRows(rows, labels, artifacts.tokenLimits);
  const session = await artifacts.session("eval");
  let lossSum = 0;
  let counted = 0;
  for (const batch of sequentialBatches(rows, batchSize, labels)) {
    const outputs = await session.run(feedsFor(session, "eval", { ...batch.feeds, ...params }));
    const count = scalar(outputs.label_count as ort.Tensor);
    lossSum += scalar(outputs.loss as ort.Tensor) * count;
    counted += count;
    releaseOutputs(outputs);
  }
  const loss = counted > 0 ? lossSum / counted : 0;
  return { loss, perplexity: Math.exp(loss), countedTokens: counted };
}
