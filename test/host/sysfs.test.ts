import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Host } from '../../src/index.ts';
import { ENODEV, ENOENT, O_WRONLY } from '../../src/uapi/index.ts';
import { userAlloc } from '../helpers/user.ts';

/* the sysfs tree a VFIO user walks: iommu_groups, the PCI device directory, drivers, classes */
const BDF = '0000:00:03.0';

function echo(p: ReturnType<Host['spawn']>, path: string, text: string): number {
  const fd = p.open(path, O_WRONLY);
  if (fd < 0) return fd;
  const buf = userAlloc(p, 4096);
  const bytes = new TextEncoder().encode(text);
  p.mem.write(buf, bytes);
  const r = p.write(fd, buf, bytes.length);
  p.close(fd);
  return r;
}

describe('sysfs', () => {
  it('iommu_groups: the group lists its devices, the device links back to its group', () => {
    const host = new Host();
    host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
    host.addPciDevice({ bdf: '0000:00:03.1', model: 'generic', iommuGroup: 3 });
    const p = host.spawn();
    assert.deepEqual(p.readdir('/sys/kernel/iommu_groups'), ['3']);
    assert.deepEqual(p.readdir('/sys/kernel/iommu_groups/3/devices'), [BDF, '0000:00:03.1']);
    assert.equal(
      p.readlink(`/sys/kernel/iommu_groups/3/devices/${BDF}`),
      `../../../../devices/pci0000:00/${BDF}`,
    );
    assert.equal(p.readlink(`/sys/bus/pci/devices/${BDF}`), `../../../devices/pci0000:00/${BDF}`);
    /* the link's text does not depend on the path it was reached by */
    assert.equal(p.readlink(`/sys/bus/pci/devices/${BDF}/iommu_group`), '../../../kernel/iommu_groups/3');
    assert.equal(p.readlink(`/sys/devices/pci0000:00/${BDF}/iommu_group`), '../../../kernel/iommu_groups/3');
    assert.equal(
      p.readlink(`/sys/kernel/iommu_groups/3/devices/${BDF}/iommu_group`),
      '../../../kernel/iommu_groups/3',
    );
    assert.deepEqual(p.readdir(`/sys/bus/pci/devices/${BDF}/iommu_group/devices`), [BDF, '0000:00:03.1']);
  });

  for (const kernel of ['4.1', '6.12'] as const)
    it(`a group directory holds devices only in 4.1; reserved_regions and type in 6.12 (${kernel})`, () => {
      const host = new Host({ kernel });
      host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
      const p = host.spawn();
      assert.deepEqual(
        p.readdir('/sys/kernel/iommu_groups/3'),
        kernel === '4.1' ? ['devices'] : ['devices', 'reserved_regions', 'type'],
      );
      if (kernel === '6.12') {
        assert.equal(p.readText('/sys/kernel/iommu_groups/3/type'), 'DMA-FQ\n');
        assert.equal(
          p.readText('/sys/kernel/iommu_groups/3/reserved_regions'),
          '0x00000000fee00000 0x00000000feefffff msi\n',
        );
      }
    });

  it('the device directory: vendor, device, class, driver_override, and the driver link', () => {
    const host = new Host();
    host.addPciDevice({
      bdf: BDF,
      model: 'generic',
      iommuGroup: 3,
      vendor: 0x10ec,
      device: 0x8139,
      class: 0x020000,
    });
    const p = host.spawn();
    const dir = `/sys/bus/pci/devices/${BDF}`;
    assert.equal(p.readText(`${dir}/vendor`), '0x10ec\n');
    assert.equal(p.readText(`${dir}/device`), '0x8139\n');
    assert.equal(p.readText(`${dir}/class`), '0x020000\n');
    assert.equal(p.readText(`${dir}/driver_override`), '(null)\n');
    assert.equal(p.readlink(`${dir}/driver`), -ENOENT);
    assert.equal(host.bind(BDF, 'vfio-pci'), 0);
    assert.equal(p.readText(`${dir}/driver_override`), 'vfio-pci\n');
    assert.equal(p.readlink(`${dir}/driver`), '../../../bus/pci/drivers/vfio-pci');
    assert.deepEqual(p.readdir(`${dir}/driver`), ['bind', 'new_id', 'unbind']);
    assert.equal(host.unbind(BDF).state, 'done');
    assert.equal(p.readlink(`${dir}/driver`), -ENOENT);
  });

  it('binding as a user does: driver_override, drivers_probe; unbind through the driver', () => {
    const host = new Host();
    host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3 });
    const p = host.spawn();
    assert.equal(echo(p, `/sys/bus/pci/devices/${BDF}/driver_override`, 'vfio-pci'), 8);
    assert.equal(echo(p, '/sys/bus/pci/drivers_probe', BDF), BDF.length);
    assert.equal(host.device(BDF)?.driver?.name, 'vfio-pci');
    assert.deepEqual(p.readdir('/sys/class/vfio'), ['3']);
    assert.equal(p.readlink('/sys/class/vfio/3'), '../../devices/virtual/vfio/3');
    assert.equal(echo(p, '/sys/bus/pci/drivers/vfio-pci/unbind', BDF), BDF.length);
    assert.equal(host.device(BDF)?.driver, undefined);
    assert.deepEqual(p.readdir('/sys/class/vfio'), []);
    assert.equal(echo(p, '/sys/bus/pci/drivers/vfio-pci/unbind', BDF), -ENODEV);
    assert.equal(echo(p, '/sys/bus/pci/drivers_probe', '0000:00:09.0'), -ENODEV);
    /* bind through the driver's own file */
    assert.equal(echo(p, '/sys/bus/pci/drivers/vfio-pci/bind', BDF), BDF.length);
    assert.equal(host.device(BDF)?.driver?.name, 'vfio-pci');
    assert.equal(echo(p, '/sys/bus/pci/drivers/vfio-pci/bind', BDF), -ENODEV);
  });

  it('new_id binds the unbound devices that now match', () => {
    const host = new Host();
    host.addPciDevice({ bdf: BDF, model: 'generic', iommuGroup: 3, vendor: 0x1234, device: 0x11e8 });
    host.addPciDevice({
      bdf: '0000:00:04.0',
      model: 'generic',
      iommuGroup: 4,
      vendor: 0x1234,
      device: 0x0001,
    });
    const p = host.spawn();
    assert.equal(echo(p, '/sys/bus/pci/drivers/vfio-pci/new_id', '1234 11e8'), 9);
    assert.equal(host.device(BDF)?.driver?.name, 'vfio-pci');
    assert.equal(host.device('0000:00:04.0')?.driver, undefined);
    assert.ok(echo(p, '/sys/bus/pci/drivers/vfio-pci/new_id', 'zz') < 0);
  });
});
