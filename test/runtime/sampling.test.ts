import { applyRepetitionPenalty, argmax, seededRandom, selectToken } from "../../runtime/sampling";

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 };

describe("seededRandom", () => {
  test("same seed gives the same numbers in [0, 1)", () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const values = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(values);
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...values)).toBeLessThan(1);
    // A uniform generator's mean over 1000 draws stays within 0.05 of 0.5 (about 5 standard errors).
    expect(Math.abs(values.reduce((sum, value) => sum + value, 0) / values.length - 0.5)).toBeLessThan(0.05);
  });

  test("different seeds differ", () => {
    expect(seededRandom(1)()).not.toBe(seededRandom(2)());
  });
});

describe("selectToken", () => {
  test("argmax takes the first of equal maxima", () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
  });

  test("greedy draws no random number", () => {
    const random = jest.fn(() => 0.5);
    expect(selectToken(Float64Array.of(0, 2, 1), [], GREEDY, random)).toBe(1);
    expect(random).not.toHaveBeenCalled();
  });

  test("repetition penalty scales seen logits", () => {
    const logits = Float64Array.of(2, -2, 1);
    applyRepetitionPenalty(logits, [0, 1, 0], 2);
    expect(Array.from(logits)).toEqual([1, -4, 1]);
  });

  test("repetition penalty changes the greedy choice", () => {
    expect(selectToken(Float64Array.of(3, 2), [0], { ...GREEDY, repetitionPenalty: 2 }, Math.random)).toBe(1);
  });

  test("top-k keeps only the k best tokens", () => {
    const random = seededRandom(5);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(selectToken(Float64Array.of(1, 5, 4, 0, 3), [], { ...GREEDY, temperature: 10, topK: 2 }, random));
    expect([...seen].sort()).toEqual([1, 2]);
  });

  test("top-p keeps the smallest set reaching p", () => {
    // Probabilities 0.5, 0.3, 0.2: p = 0.7 keeps the first two tokens.
    const logits = (): Float64Array => Float64Array.of(Math.log(0.2), Math.log(0.5), Math.log(0.3));
    const random = seededRandom(9);
    const counts = [0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[selectToken(logits(), [], { ...GREEDY, temperature: 1, topP: 0.7 }, random)]++;
    expect(counts[0]).toBe(0);
    // Renormalised, token 1 has probability 0.625. Over 2000 draws its share stays within 0.05 (about 4.6 standard errors).
    expect(Math.abs(counts[1] / 2000 - 0.625)).toBeLessThan(0.05);
  });

  test("draws follow the softmax at temperature 1", () => {
    const random = seededRandom(11);
    let ones = 0;
    for (let i = 0; i < 4000; i++) ones += selectToken(Float64Array.of(0, Math.log(3)), [], { ...GREEDY, temperature: 1 }, random);
    // Token 1 has probability 0.75. Over 4000 draws its share stays within 0.03 (about 4.4 standard errors).
    expect(Math.abs(ones / 4000 - 0.75)).toBeLessThan(0.03);
  });
});
