/**
 * The synthetic digit tasks of `peftc demo` and of the script that
 * pretrained its base model (fixtures/demo/pretrain.ts). Every example is
 * a prompt of digits followed by ">", and a completion of digits followed
 * by the end-of-sequence token.
 */
import { seededRandom } from "./sampling";

/** Token ids of the demo tokenizer (fixtures/demo/tokenizer.json): padding, end of sequence, the digits 0-9 and the separator. */
export const DEMO_VOCAB = ["<pad>", "<eos>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ">"] as const;
export const DEMO_PAD_ID = 0;
export const DEMO_EOS_ID = 1;
export const DEMO_SEPARATOR = ">";

/** Shortest and longest digit strings the tasks draw. */
export const DEMO_MIN_DIGITS = 3;
export const DEMO_MAX_DIGITS = 7;

/** A task maps the prompt's digit string to the expected completion. */
export type DemoTaskName = "copy" | "increment" | "reverse";

/** One example as text: `prompt` ends with the separator, `completion` has no end-of-sequence token. */
export interface DemoExample {
  prompt: string;
  completion: string;
}

/** Applies a task to a digit string: `copy` repeats it, `reverse` reverses it, `increment` adds 1 to each digit modulo 10 ("129" gives "230"). */
export function solveDemoTask(task: DemoTaskName, digits: string): string {
  if (task === "copy") return digits;
  if (task === "reverse") return [...digits].reverse().join("");
  return [...digits].map((digit) => String((Number(digit) + 1) % 10)).join("");
}

/**
 * Draws `count` examples of `task` from a seeded generator, with digit
 * strings of DEMO_MIN_DIGITS to DEMO_MAX_DIGITS uniform random digits.
 * The same seed gives the same examples.
 */
export function makeDemoExamples(task: DemoTaskName, count: number, seed: number): DemoExample[] {
  const random = seededRandom(seed);
  const examples: DemoExample[] = [];
  for (let index = 0; index < count; index++) {
    const length = DEMO_MIN_DIGITS + Math.floor(random() * (DEMO_MAX_DIGITS - DEMO_MIN_DIGITS + 1));
    const digits = Array.from({ length }, () => String(Math.floor(random() * 10))).join("");
    examples.push({ prompt: `${digits}${DEMO_SEPARATOR}`, completion: solveDemoTask(task, digits) });
  }
  return examples;
}

/** Encodes text over DEMO_VOCAB one character per token, as the demo tokenizer does. */
export function encodeDemoText(text: string): number[] {
  return [...text].map((character) => {
    const id = DEMO_VOCAB.indexOf(character as (typeof DEMO_VOCAB)[number]);
    if (id <= DEMO_EOS_ID) throw new Error(`character ${JSON.stringify(character)} is not in the demo vocabulary (digits and "${DEMO_SEPARATOR}").`);
    return id;
  });
}

/** Formats examples as JSONL rows of token ids, {"prompt", "completion"}, so the loss covers the completion and its end-of-sequence token only. */
export function demoJsonl(examples: readonly DemoExample[]): string {
  const rows = examples.map((example) => JSON.stringify({ prompt: encodeDemoText(example.prompt), completion: [...encodeDemoText(example.completion), DEMO_EOS_ID] }));
  return rows.join("\n") + "\n";
}
