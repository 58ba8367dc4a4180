import type { Graph, GraphEdge, GraphNode } from './graph.ts';

/*
 * Graph -> Graphviz DOT. Nodes are drawn as C structs (a title row, then
 * one row per field, edges leaving from the field they belong to), grouped
 * in clusters from userspace on the left to the hardware on the right.
 * Pure and deterministic: the same graph gives the same bytes.
 */
const LAYERS: readonly { key: GraphNode['layer']; label: string; color: string }[] = [
  { key: 'user', label: 'userspace', color: '#f4f8fb' },
  { key: 'file', label: 'open files', color: '#f7f7f7' },
  { key: 'core', label: 'VFIO core (struct vfio, groups, containers, devices)', color: '#fbf8f1' },
  { key: 'backend', label: 'IOMMU backend data', color: '#f5fbf3' },
  { key: 'hw', label: 'PCI + IOMMU core', color: '#f8f5fb' },
];

const TITLE_COLOR: Record<GraphNode['kind'], string> = {
  vfio: '#e6c86e',
  iommu_driver: '#e6c86e',
  group: '#8fbcd4',
  vfio_device: '#9fd49b',
  pci_dev: '#c9b3e0',
  iommu_group: '#c9b3e0',
  container: '#f0a37a',
  iommu_data: '#b7dfa9',
  process: '#a9c8e8',
  file: '#d4d4d4',
};

export function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function quote(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function nodeDot(n: GraphNode): string {
  const rows = n.fields.map((f) => {
    const port = f.port === undefined ? '' : ` port="${htmlEscape(f.port)}"`;
    const name = f.name === '' ? '' : htmlEscape(f.name);
    return `<tr><td align="left">${name}</td><td align="left"${port}>${htmlEscape(f.value)}</td></tr>`;
  });
  const title = `<tr><td colspan="2" bgcolor="${TITLE_COLOR[n.kind]}"><b>${htmlEscape(n.title)}</b></td></tr>`;
  return `    ${quote(n.id)} [label=<<table border="0" cellborder="1" cellspacing="0" cellpadding="3" bgcolor="white">${title}${rows.join('')}</table>>];`;
}

export function edgeLabel(e: GraphEdge): string {
  const held = e.holds.map((h) => `${h.counter}=${h.value}`);
  return [e.label, ...held].join('\n');
}

function edgeDot(e: GraphEdge): string {
  const from = e.fromPort === undefined ? quote(e.from) : `${quote(e.from)}:${quote(e.fromPort)}`;
  const style =
    e.style === 'ref'
      ? 'color="#b03a2e", fontcolor="#b03a2e", penwidth=1.4'
      : e.style === 'list'
        ? 'color="#34495e", style=dashed'
        : 'color="#7f8c8d", style=dotted';
  return `  ${from} -> ${quote(e.to)} [label=${quote(edgeLabel(e))}, ${style}];`;
}

export function toDot(g: Graph): string {
  const out: string[] = [
    'digraph vfio {',
    `  graph [rankdir=LR, fontname="Courier", fontsize=11, nodesep=0.3, ranksep=0.7, label=${quote(g.title)}, labelloc=t];`,
    '  node [shape=plain, fontname="Courier", fontsize=9];',
    '  edge [fontname="Courier", fontsize=8, arrowsize=0.6];',
  ];
  for (const layer of LAYERS) {
    const nodes = g.nodes.filter((n) => n.layer === layer.key);
    if (nodes.length === 0) continue;
    out.push(`  subgraph ${quote(`cluster_${layer.key}`)} {`);
    out.push(`    label=${quote(layer.label)}; style=filled; color="#dddddd"; fillcolor="${layer.color}";`);
    for (const n of nodes) out.push(nodeDot(n));
    out.push('  }');
  }
  for (const e of g.edges) out.push(edgeDot(e));
  out.push('}');
  return `${out.join('\n')}\n`;
}
