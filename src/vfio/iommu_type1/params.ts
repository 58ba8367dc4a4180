import type { Kernel } from '../../kernel/index.ts';
import { EINVAL } from '../../uapi/index.ts';

/*
 * The module parameters of vfio_iommu_type1, one set per kernel, shown in
 * /sys/module/vfio_iommu_type1/parameters/ as the kernel does (bools read
 * Y/N, writable by root: mode 0644). dma_entry_limit exists from 5.1 on.
 * Tests and tools can also set them with type1Params(kernel).
 */
export interface Type1Params {
  /** enable VFIO on platforms without interrupt remapping */
  allow_unsafe_interrupts: boolean;
  /** pin and map one page at a time (no superpages) */
  disable_hugepages: boolean;
  /** maximum number of user DMA mappings per container (65535) */
  dma_entry_limit: number;
}

export const U16_MAX = 0xffff;
const PARAMS_DIR = '/sys/module/vfio_iommu_type1/parameters';

const instances = new WeakMap<Kernel, Type1Params>();

/** the parameters of the type1 module in this kernel (defaults while it is not loaded) */
export function type1Params(kernel: Kernel): Type1Params {
  let p = instances.get(kernel);
  if (p === undefined) {
    p = { allow_unsafe_interrupts: false, disable_hugepages: false, dma_entry_limit: U16_MAX };
    instances.set(kernel, p);
  }
  return p;
}

/* kstrtobool: 1/y/Y/on, 0/n/N/off */
function parseBool(text: string): boolean | undefined {
  const t = text.trim();
  if (/^(1|y|Y|on|ON)/.test(t)) return true;
  if (/^(0|n|N|off|OFF)/.test(t)) return false;
  return undefined;
}

/* kstrtouint */
function parseUint(text: string): number | undefined {
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(t)) return undefined;
  const v = Number(t);
  return v <= 0xffff_ffff ? v : undefined;
}

/** module_param_named(): create the sysfs nodes at module load */
export function registerType1Params(kernel: Kernel, withEntryLimit: boolean): void {
  const p = type1Params(kernel);
  const vfs = kernel.vfs;
  vfs.mkdirp(PARAMS_DIR);
  const bool = (name: 'allow_unsafe_interrupts' | 'disable_hugepages'): void => {
    vfs.add(`${PARAMS_DIR}/${name}`, {
      kind: 'attr',
      mode: 0o644,
      show: () => `${p[name] ? 'Y' : 'N'}\n`,
      store: (text) => {
        const v = parseBool(text);
        if (v === undefined) return -EINVAL;
        p[name] = v;
        return text.length;
      },
    });
  };
  bool('allow_unsafe_interrupts');
  bool('disable_hugepages');
  if (withEntryLimit)
    vfs.add(`${PARAMS_DIR}/dma_entry_limit`, {
      kind: 'attr',
      mode: 0o644,
      show: () => `${p.dma_entry_limit}\n`,
      store: (text) => {
        const v = parseUint(text);
        if (v === undefined) return -EINVAL;
        p.dma_entry_limit = v;
        return text.length;
      },
    });
}

export function unregisterType1Params(kernel: Kernel): void {
  const vfs = kernel.vfs;
  for (const n of ['allow_unsafe_interrupts', 'disable_hugepages', 'dma_entry_limit']) {
    if (typeof vfs.lookup(`${PARAMS_DIR}/${n}`) !== 'number') vfs.remove(`${PARAMS_DIR}/${n}`);
  }
}
