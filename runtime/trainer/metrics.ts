import * as fs from "node:fs";
import { writeFileAtomic } from "../../compiler/emit/safetensors";

/** One line of metrics.jsonl: a training step, with the evaluation when one ran at that step. */
export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  grad_norm: number;
  /** Positions the loss counted (labels other than -100, after the causal shift). */
  counted_tokens: number;
  /** Non-padding tokens of the step divided by its wall-clock seconds. */
  tokens_per_s: number;
  eval_loss?: number;
  eval_ppl?: number;
}

/** Appends metrics as JSON lines; each line is written whole, so a crash leaves complete lines behind. */
export class MetricsWriter {
  constructor(readonly file: string) {}

  /** Starts a new file, or keeps the lines up to and including `keepStep` when a run resumes. */
  start(keepStep: number | null): void {
    if (keepStep === null || !fs.existsSync(this.file)) {
      fs.writeFileSync(this.file, "");
      return;
    }
    const keptLines = fs
      .readFileSync(this.file, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "" && (JSON.parse(line) as StepMetrics).step <= keepStep);
    fs.writeFileSync(this.file, keptLines.map((line) => `${line}\n`).join(""));
  }

  append(metrics: StepMetrics): void {
    fs.appendFileSync(this.file, `${JSON.stringify(metrics)}\n`);
  }

  /** Reads every line back. */
  read(): StepMetrics[] {
    return fs
      .readFileSync(this.file, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as StepMetrics);
  }
}

/** A series of (step, value) points drawn as one line of the loss curve. */
export interface CurveSeries {
  label: string;
  color: string;
  points: { step: number; value: number }[];
}

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = { left: 60, right: 20, top: 30, bottom: 40 };

/**
 * Renders loss curves as a standalone SVG document with axes, five ticks
 * on each and a legend. Plotting libraries for Node either need a DOM
 * (d3 with jsdom) or are far larger than the chart (vega), so this writes
 * the few SVG elements directly.
 */
export function lossCurveSvg(series: readonly CurveSeries[], title = "loss"): string {
  const all = series.flatMap((line) => line.points).filter((point) => Number.isFinite(point.value));
  const minStep = Math.min(...all.map((point) => point.step), 0);
  const maxStep = Math.max(...all.map((point) => point.step), 1);
  const minValue = Math.min(...all.map((point) => point.value), 0);
  const maxValue = Math.max(...all.map((point) => point.value), 1e-9);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (step: number): number => MARGIN.left + ((step - minStep) / Math.max(1e-12, maxStep - minStep)) * plotWidth;
  const y = (value: number): number => MARGIN.top + (1 - (value - minValue) / Math.max(1e-12, maxValue - minValue)) * plotHeight;
  const format = (value: number): string => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3));

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    `<line x1="${MARGIN.left}" y1="${MARGIN.top + plotHeight}" x2="${MARGIN.left + plotWidth}" y2="${MARGIN.top + plotHeight}" stroke="black"/>`,
    `<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${MARGIN.top + plotHeight}" stroke="black"/>`,
  ];
  for (let tick = 0; tick <= 4; tick++) {
    const step = minStep + ((maxStep - minStep) * tick) / 4;
    const value = minValue + ((maxValue - minValue) * tick) / 4;
    parts.push(`<text x="${x(step).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${format(step)}</text>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${(y(value) + 4).toFixed(1)}" text-anchor="end">${format(value)}</text>`);
  }
  parts.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 6}" text-anchor="middle">step</text>`);
  series.forEach((line, index) => {
    const finite = line.points.filter((point) => Number.isFinite(point.value));
    if (finite.length > 0) {
      const path = finite.map((point, i) => `${i === 0 ? "M" : "L"}${x(point.step).toFixed(1)},${y(point.value).toFixed(1)}`).join(" ");
      parts.push(`<path d="${path}" fill="none" stroke="${line.color}" stroke-width="1.5"/>`);
    }
    const legendY = MARGIN.top + 12 + index * 16;
    parts.push(`<line x1="${WIDTH - 130}" y1="${legendY - 4}" x2="${WIDTH - 110}" y2="${legendY - 4}" stroke="${line.color}" stroke-width="2"/>`);
    parts.push(`<text x="${WIDTH - 104}" y="${legendY}">${escapeXml(line.label)}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

/** Writes the training and evaluation loss of `metrics` as an SVG file, atomically. */
export function writeLossCurve(file: string, metrics: readonly StepMetrics[]): void {
  const series: CurveSeries[] = [{ label: "train loss", color: "#1f77b4", points: metrics.map((line) => ({ step: line.step, value: line.loss })) }];
  const evals = metrics.filter((line) => line.eval_loss !== undefined);
  if (evals.length > 0) series.push({ label: "eval loss", color: "#d62728", points: evals.map((line) => ({ step: line.step, value: line.eval_loss! })) });
  writeFileAtomic(file, [Buffer.from(lossCurveSvg(series), "utf8")]);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
