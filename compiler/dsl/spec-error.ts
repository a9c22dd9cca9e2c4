import { type ErrorCode, PeftcError } from "../errors";
import { type SourceSite, formatSite } from "./site";

/**
 * An error in a spec's values, tied to the spec line that made the value.
 * `site` is the DSL call (`lora(...)`, `select.role(...)`) and `option` the
 * property path inside its options object (`["rankPattern", "layers.0.*"]`),
 * which the spec loader uses to point at the property itself.
 */
export class SpecError extends PeftcError {
  constructor(
    code: ErrorCode,
    readonly reason: string,
    public site: SourceSite | undefined,
    readonly option: readonly string[] = [],
  ) {
    super(code, site ? `${formatSite(site)}: ${reason}` : reason, { file: site?.file, line: site?.line, column: site?.column });
    this.name = "SpecError";
  }

  /** Moves the error to a more precise position, such as the option's property in the spec's source. */
  relocate(site: SourceSite): void {
    this.site = site;
    this.message = `${formatSite(site)}: ${this.reason}`;
    Object.assign(this.details, { file: site.file, line: site.line, column: site.column });
  }
}

export function isSpecError(error: unknown): error is SpecError {
  return error instanceof SpecError;
}
