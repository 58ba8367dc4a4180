/*
 * viz: snapshot -> graph model -> DOT / JSON / SVG. Everything but
 * renderSvg is a pure function of its input (golden-tested).
 */
export { edgeLabel, htmlEscape, toDot } from './dot.ts';
export {
  buildGraph,
  type Graph,
  type GraphEdge,
  type GraphField,
  type GraphNode,
  type GraphOptions,
  type NodeKind,
  type RefHeld,
} from './graph.ts';
export { renderSvg } from './svg.ts';
