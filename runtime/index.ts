/**
 * The peftc runtime: onnxruntime sessions on a chosen device, Hugging Face
 * tokenizers, and KV-cached generation over an artifact folder.
 */
export { Generator } from "./generator";
export type { FinishReason, Generation, GenerateOptions, GeneratorOptions, TokenEvent } from "./generator";
export { Tokenizer } from "./tokenizer";
export { openSession, describeDevice, DEVICE_REQUESTS } from "./session";
export type { DeviceRequest, ExecutionDevice, OpenedSession, OpenSessionOptions, SkippedDevice } from "./session";
export { loadParamFeeds } from "./param-feeds";
export type { Feeds } from "./param-feeds";
export { seededRandom, selectToken } from "./sampling";
export type { SamplingSettings } from "./sampling";
