import { pathToFileURL } from 'node:url';
import { type AddPciDeviceOptions, Host, type HostOptions } from '../src/index.ts';

/*
 * What the administrator does before a VFIO program runs (the kernel
 * documentation's setup): devices in their IOMMU groups, every device of
 * the group unbound from its host driver and bound to vfio-pci.
 */
export function exampleHost(opts: HostOptions, devices: readonly AddPciDeviceOptions[]): Host {
  const host = new Host(opts);
  for (const d of devices) host.addPciDevice(d);
  for (const d of devices) {
    const r = host.bind(d.bdf, 'vfio-pci');
    if (r !== 0) throw new Error(`binding ${d.bdf} to vfio-pci failed: ${r}`);
  }
  return host;
}

/** True when the module is the program node was started with (run as a CLI). */
export function isMain(meta: ImportMeta): boolean {
  const script = process.argv[1];
  return script !== undefined && meta.url === pathToFileURL(script).href;
}

/** --arch=ppc64 --kernel=6.12 from the command line. */
export function cliHostOptions(argv: readonly string[]): HostOptions {
  const get = (k: string): string | undefined =>
    argv.find((a) => a.startsWith(`--${k}=`))?.slice(k.length + 3);
  const arch = get('arch') ?? 'x86_64';
  const kernel = get('kernel') ?? '4.1';
  if (arch !== 'x86_64' && arch !== 'ppc64') throw new Error(`--arch: x86_64 or ppc64, not ${arch}`);
  if (kernel !== '4.1' && kernel !== '6.12') throw new Error(`--kernel: 4.1 or 6.12, not ${kernel}`);
  return { arch, kernel };
}

/** --arch of the options: the IOMMU the examples use there. */
export function iommuOf(opts: HostOptions): 'type1' | 'spapr' {
  return opts.arch === 'ppc64' ? 'spapr' : 'type1';
}

/**
 * RLIMIT_MEMLOCK for the example processes: sPAPR charges its whole DMA
 * window (1 GiB by default) at VFIO_IOMMU_ENABLE, type1 what it pins.
 */
export const EXAMPLE_MEMLOCK = 4n << 30n;
