import { learningRate } from "../../../runtime/trainer/schedule";

describe("learningRate", () => {
  test("constant without warmup", () => {
    for (const step of [1, 5, 10]) expect(learningRate({ name: "constant", lr: 0.1, warmup: 0, totalSteps: 10 }, step)).toBe(0.1);
  });

  test("warmup rises linearly to the peak", () => {
    const schedule = { name: "constant" as const, lr: 0.1, warmup: 4, totalSteps: 10 };
    const expected = [0.025, 0.05, 0.075, 0.1, 0.1];
    expected.forEach((lr, i) => expect(learningRate(schedule, i + 1)).toBeCloseTo(lr, 12));
  });

  test("linear decays from the peak after warmup", () => {
    const schedule = { name: "linear" as const, lr: 1, warmup: 2, totalSteps: 10 };
    expect(learningRate(schedule, 1)).toBeCloseTo(0.5, 12);
    expect(learningRate(schedule, 3)).toBeCloseTo(1, 12);
    expect(learningRate(schedule, 7)).toBeCloseTo(0.5, 12);
    expect(learningRate(schedule, 10)).toBeCloseTo(0.125, 12);
  });

  test("cosine follows half a cosine period", () => {
    const schedule = { name: "cosine" as const, lr: 2, warmup: 0, totalSteps: 4 };
    expect(learningRate(schedule, 1)).toBeCloseTo(2, 12);
    expect(learningRate(schedule, 2)).toBeCloseTo(1 + Math.cos(Math.PI / 4), 12);
    expect(learningRate(schedule, 3)).toBeCloseTo(1, 12);
    expect(learningRate(schedule, 4)).toBeCloseTo(1 + Math.cos((3 * Math.PI) / 4), 12);
  });
});
