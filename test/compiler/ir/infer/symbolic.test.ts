import {
  UNBOUNDED,
  addDims,
  broadcastDim,
  compareDims,
  divideDims,
  floorDivideDims,
  maxDims,
  minDims,
  multiplyDims,
  sameDim,
  subtractDims,
} from "../../../../compiler/ir/infer/dims";
import { formatPolynomial } from "../../../../compiler/ir/infer/polynomial";
import { evaluateDimension, parseDimension } from "../../../../compiler/ir/infer/symbolic";

const canonical = (text: string): string => formatPolynomial(parseDimension(text));

describe("dimension text", () => {
  it.each([
    ["past_sequence + sequence", "past_sequence+sequence"],
    ["1+seq_len", "seq_len+1"],
    ["0+cache_length+cache+seq", "cache+cache_length+seq"],
    ["inputs_input_ids_dim0*(inputs_attention_mask_dim1 - 1)", "inputs_attention_mask_dim1*inputs_input_ids_dim0-inputs_input_ids_dim0"],
    ["-min(8,past) + min(8,past+seq)", "min(8,past+seq)-min(8,past)"],
    ["batch", "batch"],
  ])("reads %s as %s", (text, expected) => {
    expect(canonical(text)).toBe(expected);
  });

  it("keeps text outside the grammar as one name", () => {
    expect(canonical("weird name!")).toBe("weird name!");
    expect(evaluateDimension("weird name!", new Map([["weird name!", 5]]))).toBe(5);
  });

  it("evaluates derived dimensions", () => {
    const sizes = new Map([
      ["past", 4],
      ["seq", 1],
    ]);
    expect(evaluateDimension("min(8,past+seq)-min(8,past)", sizes)).toBe(1);
    expect(evaluateDimension("past+seq", sizes)).toBe(5);
    expect(evaluateDimension("floordiv(past,3)", sizes)).toBe(1);
  });

  it("rejects an unbound name in evaluation", () => {
    expect(() => evaluateDimension("batch+1", new Map())).toThrow(/batch/);
  });
});

describe("dimension arithmetic", () => {
  it("adds and subtracts names", () => {
    expect(addDims("past_sequence", "sequence")).toBe("past_sequence+sequence");
    expect(addDims("sequence", "past_sequence")).toBe("past_sequence+sequence");
    expect(subtractDims("past+seq", "seq")).toBe("past");
    expect(addDims(3, 4)).toBe(7);
  });

  it("multiplies and divides exactly", () => {
    expect(multiplyDims(7, "batch")).toBe("7*batch");
    expect(divideDims("64*batch*seq", "4*batch")).toBe("16*seq");
    expect(divideDims("batch*past+batch*seq", "past+seq")).toBe("batch");
    expect(divideDims(12, 4)).toBe(3);
  });

  it("gives unknown for an inexact division", () => {
    expect(divideDims("batch", 3)).toBeNull();
    expect(divideDims(10, 4)).toBeNull();
  });

  it("keeps floor division that does not simplify as a function", () => {
    expect(floorDivideDims("2*a+4", 2)).toBe("a+2");
    expect(floorDivideDims("a", 2)).toBe("floordiv(a,2)");
  });

  it("treats unknown as absorbing", () => {
    expect(addDims(null, "batch")).toBeNull();
    expect(multiplyDims(2, null)).toBeNull();
  });

  it("simplifies max and min when the order is certain", () => {
    expect(maxDims("past+seq", "past")).toBe("past+seq");
    expect(minDims("past+seq", "past")).toBe("past");
    expect(minDims(8, "seq")).toBe("min(8,seq)");
    expect(minDims(UNBOUNDED, "seq")).toBe("seq");
    expect(maxDims(-UNBOUNDED, "seq")).toBe("seq");
  });

  it("compares only what holds for every size", () => {
    expect(compareDims("seq+1", "seq")).toBe("greater");
    expect(compareDims("past+seq", "past")).toBe("greater-or-equal");
    expect(compareDims("seq", -1)).toBe("greater");
    expect(compareDims("seq", 1)).toBe("unknown");
    expect(compareDims("a", "a")).toBe("equal");
  });

  it("compares dimensions by value", () => {
    expect(sameDim("past + seq", "seq+past")).toBe(true);
    expect(sameDim("batch", "batch_size")).toBe(false);
    expect(sameDim(3, 3)).toBe(true);
    expect(sameDim(null, null)).toBe(true);
  });
});

describe("broadcastDim", () => {
  it.each<[(number | string | null)[], number | string | null | "mismatch"]>([
    [[1, "batch"], "batch"],
    [["batch", "batch"], "batch"],
    [["seq+past", "past+seq"], "seq+past"],
    [[1, 1], 1],
    [[4, "batch"], 4],
    [["a", "b"], null],
    [["a", null], null],
    [[3, 4], "mismatch"],
    [["min(9999,seq)", "seq"], "seq"],
    [["min(1,batch)", "batch"], "batch"],
  ])("broadcasts %j to %j", (dims, expected) => {
    expect(broadcastDim(dims)).toEqual(expected);
  });
});
