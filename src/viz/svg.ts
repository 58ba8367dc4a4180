import { instance } from '@viz-js/viz';

/*
 * DOT -> SVG with Graphviz compiled to WebAssembly (@viz-js/viz): no
 * system Graphviz, no network. The instance is created once per process.
 */
let viz: ReturnType<typeof instance> | undefined;

export async function renderSvg(dot: string): Promise<string> {
  viz ??= instance();
  const v = await viz;
  const r = v.render(dot, { format: 'svg' });
  if (r.status !== 'success') {
    const msg = r.errors.map((e) => e.message).join('; ');
    throw new Error(`graphviz failed: ${msg}`);
  }
  return r.output;
}
