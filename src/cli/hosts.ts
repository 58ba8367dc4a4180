import { deviceModels, type HostDescription, validateHostDescription } from '../host/index.ts';

/*
 * The machines `vfio-ts demo` boots when no --host file is given. They are
 * the same as examples/hosts/x86-edu.json and ppc64-edu.json (a test keeps
 * them equal), kept here so the installed package needs no example files.
 */
export const X86_EDU = {
  description: "x86_64 with VT-d: QEMU's edu device alone in IOMMU group 3, an e1000e NIC in group 2",
  arch: 'x86_64',
  kernel: '4.1',
  iommu: { addressWidth: 39, intrRemap: true },
  devices: [
    {
      bdf: '0000:00:02.0',
      model: 'generic',
      vendor: '0x8086',
      device: '0x10d3',
      class: '0x020000',
      iommuGroup: 2,
      driver: 'e1000e',
    },
    { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 },
  ],
  process: { comm: 'vfio-demo', rlimitMemlock: '64M' },
} as const;

export const PPC64_EDU = {
  description:
    "ppc64 (POWER, 64 KiB pages): QEMU's edu device in its own partitionable endpoint, IOMMU group 1, behind a 1 GiB 32-bit TCE window",
  arch: 'ppc64',
  kernel: '4.1',
  pageSize: 65536,
  devices: [{ bdf: '0000:00:01.0', model: 'edu', iommuGroup: 1 }],
  process: { comm: 'vfio-demo', rlimitMemlock: '2G' },
} as const;

/** the edu model stands in as a generic function with edu's ids when this build has no edu model */
function withFallback(d: Record<string, unknown>): { desc: Record<string, unknown>; notes: string[] } {
  if (deviceModels.has('edu')) return { desc: d, notes: [] };
  const devices = (d.devices as Record<string, unknown>[]).map((x) =>
    x.model === 'edu' ? { ...x, model: 'generic', vendor: '0x1234', device: '0x11e8', class: '0x00ff00' } : x,
  );
  return {
    desc: { ...d, devices },
    notes: [
      'this build has no edu device model yet: a generic function with edu ids stands in (no DMA engine)',
    ],
  };
}

export function builtinHost(
  arch: 'x86_64' | 'ppc64',
  kernel: '4.1' | '6.12' | undefined,
): { desc: HostDescription; notes: string[] } {
  const base: Record<string, unknown> = { ...(arch === 'ppc64' ? PPC64_EDU : X86_EDU) };
  if (kernel !== undefined) base.kernel = kernel;
  const { desc, notes } = withFallback(base);
  return { desc: validateHostDescription(desc, `built-in ${arch} host`), notes };
}
