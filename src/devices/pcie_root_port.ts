import {
  CapBuilder,
  PCI_BRIDGE_CONTROL,
  PCI_BRIDGE_CTL_BUS_RESET,
  PCI_EXP_TYPE_ROOT_PORT,
  PCI_HEADER_TYPE_BRIDGE,
  PCI_PRIMARY_BUS,
  PCI_SECONDARY_BUS,
  PCI_SUBORDINATE_BUS,
  type PciBarSpec,
  type PciBus,
  type PciDeviceModel,
} from '../pci/index.ts';

/*
 * A PCI Express root port (QEMU's pcie-root-port, 1b36:000c): a type 1
 * header whose secondary bus holds the functions added with it as
 * `parent`. Setting Secondary Bus Reset in its bridge control resets
 * every function below it (the PCI core does that on the config write),
 * which is the bus reset vfio-pci's hot reset and the kernel's
 * pci_parent_bus_reset use. The pcieport driver binds to it.
 */
export class PcieRootPortModel implements PciDeviceModel {
  readonly model = 'pcie-root-port';
  readonly vendor = 0x1b36;
  readonly device = 0x000c;
  readonly revision = 0;
  readonly classCode = 0x060400;
  readonly headerType = PCI_HEADER_TYPE_BRIDGE;
  readonly interruptPin = 1;
  readonly pcie = true;
  readonly hostDriver = 'pcieport';
  readonly bars: readonly (PciBarSpec | undefined)[] = [];

  buildConfig(cfg: Uint8Array, wmask: Uint8Array): void {
    wmask[PCI_PRIMARY_BUS] = 0xff;
    wmask[PCI_SECONDARY_BUS] = 0xff;
    wmask[PCI_SUBORDINATE_BUS] = 0xff;
    wmask[PCI_BRIDGE_CONTROL] = (wmask[PCI_BRIDGE_CONTROL] ?? 0) | PCI_BRIDGE_CTL_BUS_RESET;
    new CapBuilder(cfg, wmask).pcie({ type: PCI_EXP_TYPE_ROOT_PORT, flr: false });
  }

  realize(_bus: PciBus): void {}

  mmioRead(): bigint {
    return 0n;
  }

  mmioWrite(): void {}

  reset(): void {}
}
