import { globToRegExp, isGlob } from "../../../compiler/dsl/glob";

/** Whether `glob` matches `text`, under the default `.` separator unless given. */
const matches = (glob: string, text: string, separators?: string): boolean => globToRegExp(glob, separators).test(text);

describe("globToRegExp", () => {
  it("matches a literal path exactly", () => {
    expect(matches("layers.0.attn.q", "layers.0.attn.q")).toBe(true);
    expect(matches("layers.0.attn.q", "layers.0.attn.qkv")).toBe(false);
    expect(matches("layers.0.attn.q", "xlayers.0.attn.q")).toBe(false);
  });

  it("treats a dot as a literal dot", () => {
    expect(matches("layers.0", "layers00")).toBe(false);
  });

  it("keeps a single star within one segment", () => {
    expect(matches("layers.*.attn.q", "layers.12.attn.q")).toBe(true);
    expect(matches("layers.*.q", "layers.0.attn.q")).toBe(false);
    expect(matches("layers.*", "layers.")).toBe(true);
  });

  it("lets a double star cross segments", () => {
    expect(matches("layers.**", "layers.0.attn.q")).toBe(true);
    expect(matches("**.down", "layers.1.mlp.down")).toBe(true);
    expect(matches("**.down", "down")).toBe(false);
  });

  it("matches one character with a question mark", () => {
    expect(matches("layers.?.attn.q", "layers.3.attn.q")).toBe(true);
    expect(matches("layers.?.attn.q", "layers.10.attn.q")).toBe(false);
    expect(matches("layers.?", "layers..")).toBe(false);
  });

  it("matches either alternative in braces", () => {
    expect(matches("layers.0.attn.{q,v}", "layers.0.attn.v")).toBe(true);
    expect(matches("layers.0.attn.{q,v}", "layers.0.attn.k")).toBe(false);
    expect(matches("layers.{0,1}.mlp.*", "layers.1.mlp.up")).toBe(true);
    expect(matches("layers.{0,1{0,1}}.x", "layers.11.x")).toBe(true);
  });

  it("closes an unclosed brace", () => {
    expect(matches("attn.{q,v", "attn.v")).toBe(true);
  });

  it("keeps a comma outside braces literal", () => {
    expect(matches("a,b", "a,b")).toBe(true);
    expect(matches("a,b", "a")).toBe(false);
  });

  it("escapes regular expression syntax", () => {
    expect(matches("a+b(c)[d]|e$^\\", "a+b(c)[d]|e$^\\")).toBe(true);
    expect(matches("a+b", "aab")).toBe(false);
  });

  it("stops a star at every separator given", () => {
    expect(matches("/model/layers.*/self_attn/*", "/model/layers.0/self_attn/MatMul", "./")).toBe(true);
    expect(matches("/model/*/MatMul", "/model/layers.0/self_attn/MatMul", "./")).toBe(false);
    expect(matches("model.*.q_proj", "model.layers/0.q_proj", "./")).toBe(false);
  });
});

describe("isGlob", () => {
  it("recognizes glob syntax", () => {
    expect(isGlob("layers.*.attn.q")).toBe(true);
    expect(isGlob("layers.?.attn.q")).toBe(true);
    expect(isGlob("layers.{0,1}.attn.q")).toBe(true);
    expect(isGlob("layers.0.attn.q")).toBe(false);
  });
});
