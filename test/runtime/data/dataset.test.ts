import * as fs from "node:fs";
import { RowStream, buildRows, checkRows, collate, shuffledOrder } from "../../../runtime/data/batches";
import { readJsonlDataset } from "../../../runtime/data/dataset";
import { writeJsonl } from "../../helpers/training";
import { removeTempDirs } from "../../helpers/temp";

afterAll(removeTempDirs);

describe("readJsonlDataset", () => {
  test("reads the three row forms", () => {
    const file = writeJsonl([{ input_ids: [1, 2, 3] }, { input_ids: [4, 5], labels: [-100, 5] }, { prompt: [7, 8], completion: [9] }]);
    const examples = readJsonlDataset(file, { encode: (text) => [...text].map((c) => c.charCodeAt(0)) });
    expect(examples.map((example) => example.labels)).toEqual([[1, 2, 3], [-100, 5], [-100, -100, 9]]);
    expect(examples[2].inputIds).toEqual([7, 8, 9]);
    expect(examples[1].source).toBe(`${file}:2`);
  });

  test("text rows use the encoder", () => {
    const file = writeJsonl([{ text: "ab" }, { prompt: "a", completion: "b" }]);
    const examples = readJsonlDataset(file, { encode: (text) => [...text].map((c) => c.charCodeAt(0)) });
    expect(examples[0].inputIds).toEqual([97, 98]);
    expect(examples[1].labels).toEqual([-100, 98]);
  });

  test("class rows carry one label per sequence", () => {
    const file = writeJsonl([{ input_ids: [1, 2, 3], label: 1 }, { text: "ab", label: 0 }]);
    const examples = readJsonlDataset(file, { encode: (text) => [...text].map((c) => c.charCodeAt(0)) });
    expect(examples.map((example) => example.classLabel)).toEqual([1, 0]);
    expect(examples[0].labels).toEqual([-100, -100, -100]);
    expect(examples[1].inputIds).toEqual([97, 98]);
  });

  test.each([
    [{ input_ids: [1, 2], label: -1 }, `field "label" is -1, but a class label must be a non-negative integer`],
    [{ input_ids: [1, 2], label: "yes" }, `field "label" is "yes"`],
    [{ input_ids: [1, 2], label: 0, labels: [1, 2] }, `field "labels" is given with "label"`],
    [{ prompt: [1], completion: [2], label: 0 }, `field "label" goes with "input_ids" or "text"`],
    [{ label: 0 }, `field "label" needs the sequence it classifies`],
    [{ input_ids: [], label: 0 }, `field "input_ids" has no tokens`],
  ])("rejects class row %j", (row, message) => {
    const file = writeJsonl([row]);
    expect(() => readJsonlDataset(file)).toThrow(`${file}:1: ${message}`);
  });

  test.each([
    [{ input_ids: [1, -2] }, "input_ids"],
    [{ input_ids: [1, 2], labels: [1] }, "labels"],
    [{ prompt: [1] }, "completion"],
    [{ text: "hi" }, "text"],
    [{ other: 1 }, "input_ids"],
  ])("rejects %j naming line and field", (row, field) => {
    const file = writeJsonl([{ input_ids: [1, 2] }, row]);
    expect(() => readJsonlDataset(file)).toThrow(`${file}:2`);
    expect(() => readJsonlDataset(file)).toThrow(field);
  });

  test("rejects invalid ids from the encoder", () => {
    const file = writeJsonl([{ text: "a b" }]);
    const encoder = { encode: () => [1, undefined as unknown as number] };
    expect(() => readJsonlDataset(file, encoder)).toThrow(`${file}:1: field "text" encodes to the invalid token id undefined at index 1`);
  });

  test("rejects invalid JSON with its line", () => {
    const file = writeJsonl([{ input_ids: [1, 2] }]);
    fs.appendFileSync(file, "{oops\n");
    expect(() => readJsonlDataset(file)).toThrow(`${file}:2: invalid JSON`);
  });
});

describe("rows and batches", () => {
  const examples = [
    { inputIds: [1, 2, 3, 4, 5], labels: [1, 2, 3, 4, 5], source: "a:1" },
    { inputIds: [6, 7], labels: [-100, 7], source: "a:2" },
  ];

  test("padding mode truncates to max length", () => {
    expect(buildRows(examples, 4, false).map((row) => row.inputIds)).toEqual([[1, 2, 3, 4], [6, 7]]);
  });

  test("packing cuts joined rows to max length", () => {
    const rows = buildRows(examples, 3, true);
    expect(rows.map((row) => row.inputIds)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(rows[1].labels).toEqual([4, 5, -100]);
    expect(rows[1].source).toBe("a:1");
  });

  test("collate pads right with masked, ignored positions", () => {
    const batch = collate(buildRows(examples, 8, false));
    expect(batch.feeds.input_ids.dims).toEqual([2, 5]);
    expect(Array.from(batch.feeds.attention_mask.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    expect(Array.from(batch.feeds.labels.data as BigInt64Array, Number).slice(5)).toEqual([-100, 7, -100, -100, -100]);
    expect(batch.tokens).toBe(7);
  });

  test("collate builds one class label per row", () => {
    const rows = [
      { inputIds: [1, 2, 3], labels: [-100, -100, -100], classLabel: 1, source: "c:1" },
      { inputIds: [4], labels: [-100], classLabel: 0, source: "c:2" },
    ];
    const batch = collate(rows, { kind: "classes", classes: 2 });
    expect(batch.feeds.labels.dims).toEqual([2]);
    expect(Array.from(batch.feeds.labels.data as BigInt64Array, Number)).toEqual([1, 0]);
    expect(batch.feeds.input_ids.dims).toEqual([2, 3]);
  });

  test("truncation keeps the class label", () => {
    const rows = buildRows([{ inputIds: [1, 2, 3, 4], labels: [-100, -100, -100, -100], classLabel: 1, source: "c:1" }], 2, false);
    expect(rows[0].classLabel).toBe(1);
    expect(rows[0].inputIds).toEqual([1, 2]);
  });

  test("checkRows matches rows to the loss", () => {
    const tokenRow = { inputIds: [1, 2], labels: [1, 2], source: "t:1" };
    const classRow = { inputIds: [1, 2], labels: [-100, -100], classLabel: 0, source: "c:1" };
    expect(() => checkRows([tokenRow], { kind: "tokens" })).not.toThrow();
    expect(() => checkRows([classRow], { kind: "classes", classes: 2 })).not.toThrow();
    expect(() => checkRows([classRow], { kind: "tokens" })).toThrow(`c:1: the row has a class "label", but the artifact folder trains a language-model loss`);
    expect(() => checkRows([tokenRow], { kind: "classes", classes: 2 })).toThrow(`t:1: the row has no class "label"`);
  });

  test("shuffling is seeded and differs per epoch", () => {
    expect(shuffledOrder(20, 3, 0)).toEqual(shuffledOrder(20, 3, 0));
    expect(shuffledOrder(20, 3, 0)).not.toEqual(shuffledOrder(20, 3, 1));
    expect(shuffledOrder(20, 3, 0)).not.toEqual(shuffledOrder(20, 4, 0));
    expect([...shuffledOrder(20, 3, 0)].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  test("row stream covers each row once per epoch", () => {
    const rows = Array.from({ length: 5 }, (_, i) => ({ inputIds: [i, i], labels: [i, i], source: `r:${i}` }));
    const stream = new RowStream(rows, 9);
    const firstEpoch = stream.take(0, 5).map((row) => row.inputIds[0]);
    expect([...firstEpoch].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(stream.take(3, 4).map((row) => row.inputIds[0]).slice(0, 2)).toEqual(firstEpoch.slice(3));
  });
});
