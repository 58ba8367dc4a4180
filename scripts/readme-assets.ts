/*
 * The README's generated parts, from real runs (never by hand):
 *   docs/vfio-objects.svg   the object graph of `vfio-ts demo` at its busiest moment
 *   docs/demo-trace.txt     a function_graph excerpt: the sPAPR SET_CONTAINER/SET_IOMMU of the seeds
 *   docs/demo-steps.txt     the first steps of `vfio-ts demo`
 *   schemas/host.schema.json  the host description schema (src/host/host_schema.ts)
 * and the README blocks between <!-- name:begin --> and <!-- name:end -->.
 *
 *   node --import tsx scripts/readme-assets.ts
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { memoryIo } from '../src/cli/io.ts';
import { runCli } from '../src/cli/main.ts';
import { hostSchema } from '../src/host/index.ts';

async function cli(...argv: string[]): Promise<string> {
  const io = memoryIo();
  const code = await runCli(argv, io);
  if (code !== 0) throw new Error(`vfio-ts ${argv.join(' ')} exited ${code}: ${io.stderr.join('\n')}`);
  return `${io.stdout.join('\n')}\n`;
}

function replaceBlock(text: string, name: string, body: string): string {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${begin} ... ${end} block`);
  return `${text.slice(0, i + begin.length)}\n${body}${text.slice(j)}`;
}

writeFileSync('schemas/host.schema.json', `${JSON.stringify(hostSchema, null, 2)}\n`);
/* in the project's JSON style, so `npm run lint` stays clean */
spawnSync(
  process.execPath,
  ['node_modules/@biomejs/biome/bin/biome', 'format', '--write', 'schemas/host.schema.json'],
  {
    stdio: 'ignore',
  },
);

const svg = await cli('graph', '--format', 'svg');
/* the picture is a documentation asset: drop Graphviz's comments to keep it small */
const bare = svg.replace(/<!--[\s\S]*?-->\n?/g, '');
const at = bare.indexOf('<svg');
writeFileSync(
  'docs/vfio-objects.svg',
  bare.slice(0, at) +
    bare
      .slice(at)
      .replace(/-?\d+\.\d+/g, (n) => String(Math.round(Number.parseFloat(n) * 10) / 10))
      .replace(/>\s+</g, '><'),
);

const trace = await cli('trace', '--arch', 'ppc64', '-f', 'vfio_group_set_container,vfio_ioctl_set_iommu');
writeFileSync('docs/demo-trace.txt', trace);

const demo = await cli('demo', '--no-graph');
const steps = demo.split('\n');
const upto = steps.findIndex((l) => l.startsWith('[10]'));
const excerpt = `${steps.slice(0, upto).join('\n')}\n...\n`;
writeFileSync('docs/demo-steps.txt', excerpt);

let readme = readFileSync('README.md', 'utf8');
readme = replaceBlock(readme, 'demo', `\`\`\`text\n$ npx vfio-ts demo\n${excerpt}\`\`\`\n`);
readme = replaceBlock(
  readme,
  'trace',
  `\`\`\`text\n$ npx vfio-ts trace --arch ppc64 -f vfio_group_set_container,vfio_ioctl_set_iommu\n${trace}\`\`\`\n`,
);
writeFileSync('README.md', readme);
console.log(
  'wrote schemas/host.schema.json, docs/vfio-objects.svg, docs/demo-trace.txt, docs/demo-steps.txt, README.md blocks',
);
