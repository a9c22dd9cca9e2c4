import type { Tokenizer } from "./tokenizer";

/** U+FFFD, what decoding yields for the bytes of a character that is not complete yet. */
const REPLACEMENT_CHARACTER = "\uFFFD";

/**
 * The generated text of one row, decoded after each new token. It finds
 * stop strings and hands out text deltas that never need to be taken back:
 * it holds back a trailing incomplete UTF-8 character and any ending that
 * could still grow into a stop string.
 */
export class TextStream {
  private readonly promptText: string;
  private text = "";
  private emitted = 0;
  /** Set when a stop string appeared: the text before it. */
  private stoppedText: string | null = null;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly promptIds: readonly number[],
    private readonly stops: readonly string[],
  ) {
    this.promptText = tokenizer.decode(promptIds);
  }

  /** Whether the text now contains a stop string. */
  get stopped(): boolean {
    return this.stoppedText !== null;
  }

  /** The generated text so far, cut before the first stop string once one appeared. */
  get finalText(): string {
    return this.stoppedText ?? this.text;
  }

  /**
   * Updates the text for the generated ids so far and returns the delta
   * that is safe to show. Decoding the whole sequence, not the new ids
   * alone, keeps word-initial spaces and multi-byte characters right.
   */
  update(generatedIds: readonly number[]): string {
    // NOTE: this decodes prompt and generated ids on every token, so the cost grows quadratically with the length.
    const full = this.tokenizer.decode([...this.promptIds, ...generatedIds]);
    this.text = full.startsWith(this.promptText) ? full.slice(this.promptText.length) : this.tokenizer.decode(generatedIds);

    const stopAt = this.firstStop();
    if (stopAt !== null) {
      this.stoppedText = this.text.slice(0, stopAt);
      return this.flush();
    }
    return this.take(this.safeEnd());
  }

  /** Returns the text not yet handed out. Call it once the row is finished. */
  flush(): string {
    return this.take(this.finalText.length);
  }

  private take(end: number): string {
    if (end <= this.emitted) return "";
    const delta = this.finalText.slice(this.emitted, end);
    this.emitted = end;
    return delta;
  }

  /** Index of the earliest stop string in the text, or null. */
  private firstStop(): number | null {
    let earliest: number | null = null;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop);
      if (at >= 0 && (earliest === null || at < earliest)) earliest = at;
    }
    return earliest;
  }

  /** Length of the text that can be shown: without a trailing replacement character or the start of a stop string. */
  private safeEnd(): number {
    let end = this.text.length;
    while (end > 0 && this.text[end - 1] === REPLACEMENT_CHARACTER) end--;
    let heldBack = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, end); length > heldBack; length--) {
        if (this.text.slice(end - length, end) === stop.slice(0, length)) {
          heldBack = length;
          break;
        }
      }
    }
    return end - heldBack;
  }
}
