import { type CallExpression, Node, type SourceFile, SyntaxKind } from "ts-morph";
import type { SourceSite } from "./site";

/**
 * Finds the source position of an option inside a DSL call. `site` is
 * where the call was captured: at or inside its callee, or at its opening
 * parenthesis. `option` is the property path inside the call's first
 * argument, such as `["rankPattern", "layers.0.*"]`, where a numeric
 * segment indexes an array literal (`["methods", "0"]`).
 *
 * Returns the start of the deepest property name (or array element) the
 * path reaches through object and array literals written in the call. With
 * an empty path, or when not even the first segment is written there (the
 * options come from a variable), it returns the start of the callee's
 * name: `lora` in `lora({...})`, `layers` in `select.layers(3, 1)`.
 * Undefined when no call is at `site`.
 */
export function locateOption(sourceFile: SourceFile, site: SourceSite, option: readonly string[]): SourceSite | undefined {
  const call = callAt(sourceFile, site);
  if (!call) return undefined;

  let target: Node = calleeName(call);
  let current: Node | undefined = unwrap(call.getArguments()[0]);
  for (const key of option) {
    const next = current ? member(current, key) : undefined;
    if (!next) break;
    target = next.at;
    current = next.value ? unwrap(next.value) : undefined;
  }
  const position = sourceFile.compilerNode.getLineAndCharacterOfPosition(target.getStart());
  return { file: site.file, line: position.line + 1, column: position.character + 1 };
}

/** Finds the innermost call whose callee or opening parenthesis contains the site's position. */
function callAt(sourceFile: SourceFile, site: SourceSite): CallExpression | undefined {
  const lineStarts = sourceFile.compilerNode.getLineStarts();
  if (site.line < 1 || site.line > lineStarts.length || site.column < 1) return undefined;
  const position = sourceFile.compilerNode.getPositionOfLineAndCharacter(site.line - 1, site.column - 1);
  for (let node = sourceFile.getDescendantAtPos(position); node; node = node.getParent()) {
    if (!Node.isCallExpression(node)) continue;
    const open = node.getFirstChildByKind(SyntaxKind.OpenParenToken);
    if (position >= node.getStart() && open && position < open.getEnd()) return node;
  }
  return undefined;
}

/** Returns the name a call is written with: the identifier of `lora(...)`, the property name of `select.layers(...)`. */
function calleeName(call: CallExpression): Node {
  const callee = unwrap(call.getExpression()) ?? call.getExpression();
  if (Node.isPropertyAccessExpression(callee)) return callee.getNameNode();
  return callee;
}

/** Looks through parentheses and type assertions, which do not change the value written. */
function unwrap(node: Node | undefined): Node | undefined {
  let current = node;
  while (
    current &&
    (Node.isParenthesizedExpression(current) || Node.isAsExpression(current) || Node.isSatisfiesExpression(current) || Node.isTypeAssertion(current) || Node.isNonNullExpression(current))
  ) {
    current = current.getExpression();
  }
  return current;
}

/**
 * Finds property `key` of an object literal, or element `key` of an array
 * literal. `at` is the node to point at and `value` the node the path
 * continues into. Undefined when the literal does not write that key itself.
 */
function member(container: Node, key: string): { at: Node; value: Node | undefined } | undefined {
  if (Node.isObjectLiteralExpression(container)) {
    // The last property wins in JavaScript, so search from the end.
    const properties = container.getProperties();
    for (let i = properties.length - 1; i >= 0; i--) {
      const property = properties[i];
      if (Node.isSpreadAssignment(property)) return undefined;
      if (Node.isPropertyAssignment(property) && propertyKey(property.getNameNode()) === key) return { at: property.getNameNode(), value: property.getInitializer() };
      if (Node.isShorthandPropertyAssignment(property) && property.getName() === key) return { at: property.getNameNode(), value: undefined };
    }
    return undefined;
  }
  if (Node.isArrayLiteralExpression(container) && /^\d+$/.test(key)) {
    const elements = container.getElements();
    const index = Number(key);
    // A spread before the element shifts indices by a length unknown here.
    if (index >= elements.length || elements.slice(0, index + 1).some((element) => Node.isSpreadElement(element))) return undefined;
    return { at: elements[index], value: elements[index] };
  }
  return undefined;
}

/** Computes the property key of a name node as JavaScript does; undefined for a key only known at run time. */
function propertyKey(name: Node): string | undefined {
  if (Node.isIdentifier(name) || Node.isPrivateIdentifier(name)) return name.getText();
  if (Node.isStringLiteral(name) || Node.isNoSubstitutionTemplateLiteral(name)) return name.getLiteralText();
  if (Node.isNumericLiteral(name)) return String(name.getLiteralValue());
  if (Node.isComputedPropertyName(name)) {
    const expression = unwrap(name.getExpression());
    if (expression && (Node.isStringLiteral(expression) || Node.isNoSubstitutionTemplateLiteral(expression))) return expression.getLiteralText();
    if (expression && Node.isNumericLiteral(expression)) return String(expression.getLiteralValue());
  }
  return undefined;
}
