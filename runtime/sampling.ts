/**
 * Next-token selection from one row of logits: repetition penalty, then
 * temperature, top-k and top-p, in the order of Hugging Face transformers'
 * logits processors.
 */

/** Settings that pick the next token. Temperature 0 means greedy. */
export interface SamplingSettings {
  temperature: number;
  /** Number of most likely tokens to keep, or 0 to keep all. */
  topK: number;
  /** Nucleus threshold p: sampling keeps the smallest set of most likely tokens whose probabilities add up to at least p (1 keeps all). */
  topP: number;
  /** CTRL's repetition penalty, which divides a seen token's positive logit and multiplies a negative one. 1 turns it off. */
  repetitionPenalty: number;
}

/**
 * Returns a mulberry32 generator of uniform numbers in [0, 1) for a 32-bit
 * seed. Sampling with the same seed and inputs picks the same tokens.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Applies the repetition penalty in place, once per distinct token of `history`. */
export function applyRepetitionPenalty(logits: Float64Array, history: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const token of new Set(history)) {
    if (token < 0 || token >= logits.length) continue;
    const score = logits[token];
    logits[token] = score < 0 ? score * penalty : score / penalty;
  }
}

/** Returns the index of the largest logit; ties go to the smallest index. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Returns token ids by descending logit, ties by ascending id, so truncation is deterministic. */
function rankTokens(logits: Float64Array): number[] {
  const order = Array.from({ length: logits.length }, (_, i) => i);
  order.sort((a, b) => logits[b] - logits[a] || a - b);
  return order;
}

/**
 * Picks the next token from `logits` (one row, modified in place).
 * `history` is the row's prompt and generated ids, for the repetition
 * penalty. Greedy decoding (temperature 0) draws no random number.
 */
export function selectToken(logits: Float64Array, history: Iterable<number>, settings: SamplingSettings, random: () => number): number {
  applyRepetitionPenalty(logits, history, settings.repetitionPenalty);
  if (settings.temperature === 0) return argmax(logits);

  for (let i = 0; i < logits.length; i++) logits[i] /= settings.temperature;
  let ranked = rankTokens(logits);
  if (settings.topK > 0 && settings.topK < ranked.length) ranked = ranked.slice(0, settings.topK);

  // Softmax over the kept tokens, shifted by the largest logit against overflow.
  const top = logits[ranked[0]];
  const weights = ranked.map((token) => Math.exp(logits[token] - top));
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  let probabilities = weights.map((weight) => weight / total);

  if (settings.topP < 1) {
    let cumulative = 0;
    let kept = 0;
    while (kept < probabilities.length && cumulative < settings.topP) cumulative += probabilities[kept++];
    ranked = ranked.slice(0, Math.max(kept, 1));
    const keptTotal = probabilities.slice(0, ranked.length).reduce((sum, p) => sum + p, 0);
    probabilities = probabilities.slice(0, ranked.length).map((p) => p / keptTotal);
  }

  const draw = random();
  let cumulative = 0;
  for (let i = 0; i < ranked.length; i++) {
    cumulative += probabilities[i];
    if (draw < cumulative) return ranked[i];
  }
  // Rounding can leave the sum a little under 1, and then the draw lands on the last kept token.
  return ranked[ranked.length - 1];
}
