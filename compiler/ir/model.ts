import { AttributeProto, DeviceConfigurationProto, StringStringEntryProto, TrainingInfoProto, ValueInfoProto } from "../onnx/proto";
import { Graph } from "./graph";
import { NameAllocator } from "./names";

/**
 * A model-local function (FunctionProto). Its body is a Graph whose inputs
 * and outputs are the function's formal parameters.
 */
export interface ModelFunction {
  name: string;
  domain: string;
  overload: string | undefined;
  body: Graph;
  /** Names of attributes without defaults. */
  attributeNames: string[];
  /** Attributes with defaults (IR 9+). */
  attributeProtos: AttributeProto[];
  opsetImports: Map<string, number>;
  valueInfo: ValueInfoProto[];
  docString: string | undefined;
  metadataProps: StringStringEntryProto[] | undefined;
}

/** The whole model: metadata, opset imports, the main graph and its functions. */
export class Model {
  irVersion: number;
  /** Opset version per domain; the default domain is "". */
  readonly opsetImports: Map<string, number>;
  producerName = "";
  producerVersion = "";
  domain = "";
  modelVersion = 0n;
  docString: string | undefined;
  metadataProps: StringStringEntryProto[] = [];
  readonly functions: ModelFunction[] = [];
  /** Training algorithm graphs and device configurations; carried unchanged. */
  trainingInfo: TrainingInfoProto[] = [];
  configuration: DeviceConfigurationProto[] = [];
  readonly names: NameAllocator;
  readonly graph: Graph;
  /** Oddities the reader accepted and repaired, as onnxruntime would; shown by `peftc inspect`. */
  readonly loadWarnings: string[] = [];

  constructor(init: { irVersion: number; opsetImports: Map<string, number>; graphName: string; names?: NameAllocator }) {
    this.irVersion = init.irVersion;
    this.opsetImports = init.opsetImports;
    this.names = init.names ?? new NameAllocator();
    this.graph = new Graph(this.names, init.graphName);
  }

  /** Opset version of `domain` ("" or "ai.onnx" for the default domain). */
  opsetVersion(domain: string): number | undefined {
    if (domain === "ai.onnx") domain = "";
    return this.opsetImports.get(domain);
  }

  findFunction(domain: string, name: string, overload = ""): ModelFunction | undefined {
    return this.functions.find((fn) => fn.domain === domain && fn.name === name && (fn.overload ?? "") === overload);
  }
}
