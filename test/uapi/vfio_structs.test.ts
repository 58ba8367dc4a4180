// Layout tests, the equivalent of bindgen's: every struct's sizeof and every
// field's type and offset, typed out by hand from include/uapi/linux/vfio.h
// (x86_64 / ppc64le). Format: 'name sizeof: field type offset, ...'.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FieldTable, StructLayout } from '../../src/uapi/index.ts';
import * as uapi from '../../src/uapi/index.ts';

const HDR = 'header_id u16 0, header_version u16 2, header_next u32 4';
const EXPECTED = [
  'vfio_info_cap_header 8: id u16 0, version u16 2, next u32 4',
  'vfio_group_status 8: argsz u32 0, flags u32 4',
  'vfio_device_info 24: argsz u32 0, flags u32 4, num_regions u32 8, num_irqs u32 12, cap_offset u32 16, pad u32 20',
  `vfio_device_info_cap_pci_atomic_comp 16: ${HDR}, flags u32 8, reserved u32 12`,
  'vfio_region_info 32: argsz u32 0, flags u32 4, index u32 8, cap_offset u32 12, size u64 16, offset u64 24',
  'vfio_region_sparse_mmap_area 16: offset u64 0, size u64 8',
  `vfio_region_info_cap_sparse_mmap 16: ${HDR}, nr_areas u32 8, reserved u32 12`,
  `vfio_region_info_cap_type 16: ${HDR}, type u32 8, subtype u32 12`,
  `vfio_region_info_cap_nvlink2_ssatgt 16: ${HDR}, tgt u64 8`,
  `vfio_region_info_cap_nvlink2_lnkspd 16: ${HDR}, link_speed u32 8, __pad u32 12`,
  'vfio_region_gfx_edid 24: edid_offset u32 0, edid_max_size u32 4, edid_size u32 8, max_xres u32 12, max_yres u32 16, link_state u32 20',
  'vfio_device_migration_info 32: device_state u32 0, reserved u32 4, pending_bytes u64 8, data_offset u64 16, data_size u64 24',
  'vfio_irq_info 16: argsz u32 0, flags u32 4, index u32 8, count u32 12',
  'vfio_irq_set 20: argsz u32 0, flags u32 4, index u32 8, start u32 12, count u32 16',
  'vfio_pci_dependent_device 8: group_id u32 0, segment u16 4, bus u8 6, devfn u8 7',
  'vfio_pci_hot_reset_info 12: argsz u32 0, flags u32 4, count u32 8',
  'vfio_pci_hot_reset 12: argsz u32 0, flags u32 4, count u32 8',
  'vfio_device_gfx_plane_info 64: argsz u32 0, flags u32 4, drm_plane_type u32 8, drm_format u32 12, drm_format_mod u64 16, width u32 24, height u32 28, stride u32 32, size u32 36, x_pos u32 40, y_pos u32 44, x_hot u32 48, y_hot u32 52, region_index u32 56, reserved u32 60',
  'vfio_device_ioeventfd 32: argsz u32 0, flags u32 4, offset u64 8, data u64 16, fd s32 24, reserved u32 28',
  'vfio_device_feature 8: argsz u32 0, flags u32 4',
  'vfio_device_bind_iommufd 24: argsz u32 0, flags u32 4, iommufd s32 8, out_devid u32 12, token_uuid_ptr u64 16',
  'vfio_device_attach_iommufd_pt 16: argsz u32 0, flags u32 4, pt_id u32 8, pasid u32 12',
  'vfio_device_detach_iommufd_pt 12: argsz u32 0, flags u32 4, pasid u32 8',
  'vfio_device_feature_migration 8: flags u64 0',
  'vfio_device_feature_mig_state 8: device_state u32 0, data_fd s32 4',
  'vfio_precopy_info 24: argsz u32 0, flags u32 4, initial_bytes u64 8, dirty_bytes u64 16',
  'vfio_device_low_power_entry_with_wakeup 8: wakeup_eventfd s32 0, reserved u32 4',
  'vfio_device_feature_dma_logging_control 24: page_size u64 0, num_ranges u32 8, __reserved u32 12, ranges u64 16',
  'vfio_device_feature_dma_logging_range 16: iova u64 0, length u64 8',
  'vfio_device_feature_dma_logging_report 32: iova u64 0, length u64 8, page_size u64 16, bitmap u64 24',
  'vfio_device_feature_mig_data_size 8: stop_copy_length u64 0',
  'vfio_device_feature_bus_master 4: op u32 0',
  'vfio_region_dma_range 16: offset u64 0, length u64 8',
  'vfio_device_feature_dma_buf 16: region_index u32 0, open_flags u32 4, flags u32 8, nr_ranges u32 12',
  'vfio_iommu_type1_info 24: argsz u32 0, flags u32 4, iova_pgsizes u64 8, cap_offset u32 16, pad u32 20',
  'vfio_iova_range 16: start u64 0, end u64 8',
  `vfio_iommu_type1_info_cap_iova_range 16: ${HDR}, nr_iovas u32 8, reserved u32 12`,
  `vfio_iommu_type1_info_cap_migration 32: ${HDR}, flags u32 8, pgsize_bitmap u64 16, max_dirty_bitmap_size u64 24`,
  `vfio_iommu_type1_info_dma_avail 12: ${HDR}, avail u32 8`,
  'vfio_iommu_type1_dma_map 32: argsz u32 0, flags u32 4, vaddr u64 8, iova u64 16, size u64 24',
  'vfio_iommu_type1_dma_unmap 24: argsz u32 0, flags u32 4, iova u64 8, size u64 16',
  'vfio_bitmap 24: pgsize u64 0, size u64 8, data u64 16',
  'vfio_iommu_type1_dirty_bitmap 8: argsz u32 0, flags u32 4',
  'vfio_iommu_type1_dirty_bitmap_get 40: iova u64 0, size u64 8, bitmap_pgsize u64 16, bitmap_size u64 24, bitmap_data u64 32',
  'vfio_iommu_spapr_tce_ddw_info 16: pgsizes u64 0, max_dynamic_windows_supported u32 8, levels u32 12',
  'vfio_iommu_spapr_tce_info 32: argsz u32 0, flags u32 4, dma32_window_start u32 8, dma32_window_size u32 12, ddw_pgsizes u64 16, ddw_max_dynamic_windows_supported u32 24, ddw_levels u32 28',
  'vfio_eeh_pe_err 24: type u32 0, func u32 4, addr u64 8, mask u64 16',
  'vfio_eeh_pe_op 40: argsz u32 0, flags u32 4, op u32 8, err_type u32 16, err_func u32 20, err_addr u64 24, err_mask u64 32',
  'vfio_iommu_spapr_register_memory 24: argsz u32 0, flags u32 4, vaddr u64 8, size u64 16',
  'vfio_iommu_spapr_tce_create 40: argsz u32 0, flags u32 4, page_shift u32 8, __resv1 u32 12, window_size u64 16, levels u32 24, __resv2 u32 28, start_addr u64 32',
  'vfio_iommu_spapr_tce_remove 16: argsz u32 0, flags u32 4, start_addr u64 8',
];

interface Expected {
  name: string;
  size: number;
  fields: [string, string, number][];
}
function parse(line: string): Expected {
  const m = /^(\w+) (\d+): (.*)$/.exec(line);
  assert.ok(m, line);
  const fields = m[3]!.split(', ').map((f): [string, string, number] => {
    const [name, type, off] = f.split(' ');
    return [name!, type!, Number(off)];
  });
  return { name: m[1]!, size: Number(m[2]), fields };
}

const exported = uapi as unknown as Record<string, unknown>;

describe('vfio.h struct layouts', () => {
  for (const exp of EXPECTED.map(parse)) {
    it(`${exp.name}: sizeof ${exp.size}, fields at their header offsets`, () => {
      const layout = exported[exp.name] as StructLayout<FieldTable> | undefined;
      assert.ok(layout, `${exp.name} is exported`);
      assert.equal(layout.name, exp.name);
      assert.equal(layout.size, exp.size);
      const actual = Object.entries(layout.fields).map(([n, [t, o]]) => [n, t, o]);
      assert.deepEqual(actual, exp.fields);
      for (const [n, , o] of exp.fields) assert.equal(layout.offsetof(n), o);
    });
  }

  it('VFIO_STRUCTS lists exactly the tested structs', () => {
    assert.deepEqual(
      uapi.VFIO_STRUCTS.map((s) => s.name),
      EXPECTED.map((l) => parse(l).name),
    );
  });

  it('minsz values the kernel handlers use (offsetofend of the last mandatory field)', () => {
    assert.equal(uapi.vfio_group_status.offsetofend('flags'), 8);
    assert.equal(uapi.vfio_device_info.offsetofend('num_irqs'), 16);
    assert.equal(uapi.vfio_region_info.offsetofend('offset'), 32);
    assert.equal(uapi.vfio_irq_info.offsetofend('count'), 16);
    assert.equal(uapi.vfio_irq_set.offsetofend('count'), 20);
    assert.equal(uapi.vfio_pci_hot_reset_info.offsetofend('count'), 12);
    assert.equal(uapi.vfio_pci_hot_reset.offsetofend('count'), 12);
    assert.equal(uapi.vfio_iommu_type1_info.offsetofend('iova_pgsizes'), 16);
    assert.equal(uapi.vfio_iommu_type1_dma_map.offsetofend('size'), 32);
    assert.equal(uapi.vfio_iommu_type1_dma_unmap.offsetofend('size'), 24);
    assert.equal(uapi.vfio_iommu_type1_dirty_bitmap.offsetofend('flags'), 8);
    assert.equal(uapi.vfio_iommu_spapr_tce_info.offsetofend('dma32_window_size'), 16);
    assert.equal(uapi.vfio_eeh_pe_op.offsetofend('op'), 12);
    assert.equal(uapi.vfio_iommu_spapr_register_memory.offsetofend('size'), 24);
    assert.equal(uapi.vfio_iommu_spapr_tce_create.offsetofend('start_addr'), 40);
    assert.equal(uapi.vfio_iommu_spapr_tce_remove.offsetofend('start_addr'), 16);
    assert.equal(uapi.vfio_device_feature.offsetofend('flags'), 8);
    assert.equal(uapi.vfio_device_ioeventfd.offsetofend('fd'), 28);
  });

  it('nested structs sit where their C containers put them', () => {
    const get = uapi.vfio_iommu_type1_dirty_bitmap_get;
    assert.equal(get.offsetof('bitmap_pgsize'), 16);
    assert.equal(get.size - get.offsetof('bitmap_pgsize'), uapi.vfio_bitmap.size);
    assert.equal(
      uapi.vfio_eeh_pe_op.size - uapi.vfio_eeh_pe_op.offsetof('err_type'),
      uapi.vfio_eeh_pe_err.size,
    );
    const tce = uapi.vfio_iommu_spapr_tce_info;
    assert.equal(tce.size - tce.offsetof('ddw_pgsizes'), uapi.vfio_iommu_spapr_tce_ddw_info.size);
    // capability structs begin with vfio_info_cap_header
    for (const s of uapi.VFIO_STRUCTS.filter((l) => 'header_id' in l.fields)) {
      assert.equal(s.offsetof('header_id'), 0, s.name);
      assert.equal(s.offsetof('header_next'), uapi.vfio_info_cap_header.offsetof('next'), s.name);
    }
  });
});
