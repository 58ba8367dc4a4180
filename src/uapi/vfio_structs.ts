// Structures of include/uapi/linux/vfio.h as layout tables (x86_64 / ppc64le:
// __u64 and __aligned_u64 are both 8-byte aligned). Names are the C names.
// Nested structs are flattened as `outer_inner` (C `bitmap.pgsize` is
// `bitmap_pgsize`, `header.id` is `header_id`). Flexible array members
// (`data[]`, `areas[]`, ...) are not fields: they start at `size`. Unions keep
// one member (vfio_pci_dependent_device: group_id, aka devid).
import { defineStruct, type FieldTable, type StructLayout } from './struct.ts';

export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', 8, {
  id: ['u16', 0],
  version: ['u16', 2],
  next: ['u32', 4],
});

// -------- group fd --------
export const vfio_group_status = defineStruct('vfio_group_status', 8, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
});

// -------- device fd --------
/** Seed era: 16 bytes (minsz = offsetofend('num_irqs')); cap_offset/pad since v4.6. */
export const vfio_device_info = defineStruct('vfio_device_info', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  num_regions: ['u32', 8],
  num_irqs: ['u32', 12],
  cap_offset: ['u32', 16],
  pad: ['u32', 20],
});
export const vfio_device_info_cap_pci_atomic_comp = defineStruct('vfio_device_info_cap_pci_atomic_comp', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  flags: ['u32', 8],
  reserved: ['u32', 12],
});
/** cap_offset was `resv` in the seed era. */
export const vfio_region_info = defineStruct('vfio_region_info', 32, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  index: ['u32', 8],
  cap_offset: ['u32', 12],
  size: ['u64', 16],
  offset: ['u64', 24],
});
export const vfio_region_sparse_mmap_area = defineStruct('vfio_region_sparse_mmap_area', 16, {
  offset: ['u64', 0],
  size: ['u64', 8],
});
/** Fixed part; areas[] (vfio_region_sparse_mmap_area) follow at 16. */
export const vfio_region_info_cap_sparse_mmap = defineStruct('vfio_region_info_cap_sparse_mmap', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  nr_areas: ['u32', 8],
  reserved: ['u32', 12],
});
export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  type: ['u32', 8],
  subtype: ['u32', 12],
});
export const vfio_region_info_cap_nvlink2_ssatgt = defineStruct('vfio_region_info_cap_nvlink2_ssatgt', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  tgt: ['u64', 8],
});
export const vfio_region_info_cap_nvlink2_lnkspd = defineStruct('vfio_region_info_cap_nvlink2_lnkspd', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  link_speed: ['u32', 8],
  __pad: ['u32', 12],
});
export const vfio_region_gfx_edid = defineStruct('vfio_region_gfx_edid', 24, {
  edid_offset: ['u32', 0],
  edid_max_size: ['u32', 4],
  edid_size: ['u32', 8],
  max_xres: ['u32', 12],
  max_yres: ['u32', 16],
  link_state: ['u32', 20],
});
/** v1 migration region header (deprecated). */
export const vfio_device_migration_info = defineStruct('vfio_device_migration_info', 32, {
  device_state: ['u32', 0],
  reserved: ['u32', 4],
  pending_bytes: ['u64', 8],
  data_offset: ['u64', 16],
  data_size: ['u64', 24],
});
export const vfio_irq_info = defineStruct('vfio_irq_info', 16, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  index: ['u32', 8],
  count: ['u32', 12],
});
/** data[] (u8 bools or s32 eventfds) follows at 20. */
export const vfio_irq_set = defineStruct('vfio_irq_set', 20, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  index: ['u32', 8],
  start: ['u32', 12],
  count: ['u32', 16],
});
export const vfio_pci_dependent_device = defineStruct('vfio_pci_dependent_device', 8, {
  group_id: ['u32', 0],
  segment: ['u16', 4],
  bus: ['u8', 6],
  devfn: ['u8', 7],
});
/** devices[] (vfio_pci_dependent_device) follow at 12. */
export const vfio_pci_hot_reset_info = defineStruct('vfio_pci_hot_reset_info', 12, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  count: ['u32', 8],
});
/** group_fds[] (s32) follow at 12. */
export const vfio_pci_hot_reset = defineStruct('vfio_pci_hot_reset', 12, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  count: ['u32', 8],
});
/** region_index is a union with dmabuf_id. */
export const vfio_device_gfx_plane_info = defineStruct('vfio_device_gfx_plane_info', 64, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  drm_plane_type: ['u32', 8],
  drm_format: ['u32', 12],
  drm_format_mod: ['u64', 16],
  width: ['u32', 24],
  height: ['u32', 28],
  stride: ['u32', 32],
  size: ['u32', 36],
  x_pos: ['u32', 40],
  y_pos: ['u32', 44],
  x_hot: ['u32', 48],
  y_hot: ['u32', 52],
  region_index: ['u32', 56],
  reserved: ['u32', 60],
});
export const vfio_device_ioeventfd = defineStruct('vfio_device_ioeventfd', 32, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  offset: ['u64', 8],
  data: ['u64', 16],
  fd: ['s32', 24],
  reserved: ['u32', 28],
});
/** data[] follows at 8. */
export const vfio_device_feature = defineStruct('vfio_device_feature', 8, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
});
/** token_uuid_ptr is a recent (v6.1x) addition; 16 bytes before it. */
export const vfio_device_bind_iommufd = defineStruct('vfio_device_bind_iommufd', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  iommufd: ['s32', 8],
  out_devid: ['u32', 12],
  token_uuid_ptr: ['u64', 16],
});
/** pasid is a recent (v6.1x) addition; 12 bytes before it. */
export const vfio_device_attach_iommufd_pt = defineStruct('vfio_device_attach_iommufd_pt', 16, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  pt_id: ['u32', 8],
  pasid: ['u32', 12],
});
/** pasid is a recent (v6.1x) addition; 8 bytes before it. */
export const vfio_device_detach_iommufd_pt = defineStruct('vfio_device_detach_iommufd_pt', 12, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  pasid: ['u32', 8],
});

// -------- VFIO_DEVICE_FEATURE payloads and migration --------
export const vfio_device_feature_migration = defineStruct('vfio_device_feature_migration', 8, {
  flags: ['u64', 0],
});
export const vfio_device_feature_mig_state = defineStruct('vfio_device_feature_mig_state', 8, {
  device_state: ['u32', 0],
  data_fd: ['s32', 4],
});
export const vfio_precopy_info = defineStruct('vfio_precopy_info', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  initial_bytes: ['u64', 8],
  dirty_bytes: ['u64', 16],
});
export const vfio_device_low_power_entry_with_wakeup = defineStruct(
  'vfio_device_low_power_entry_with_wakeup',
  8,
  {
    wakeup_eventfd: ['s32', 0],
    reserved: ['u32', 4],
  },
);
export const vfio_device_feature_dma_logging_control = defineStruct(
  'vfio_device_feature_dma_logging_control',
  24,
  {
    page_size: ['u64', 0],
    num_ranges: ['u32', 8],
    __reserved: ['u32', 12],
    ranges: ['u64', 16],
  },
);
export const vfio_device_feature_dma_logging_range = defineStruct(
  'vfio_device_feature_dma_logging_range',
  16,
  {
    iova: ['u64', 0],
    length: ['u64', 8],
  },
);
export const vfio_device_feature_dma_logging_report = defineStruct(
  'vfio_device_feature_dma_logging_report',
  32,
  {
    iova: ['u64', 0],
    length: ['u64', 8],
    page_size: ['u64', 16],
    bitmap: ['u64', 24],
  },
);
export const vfio_device_feature_mig_data_size = defineStruct('vfio_device_feature_mig_data_size', 8, {
  stop_copy_length: ['u64', 0],
});
export const vfio_device_feature_bus_master = defineStruct('vfio_device_feature_bus_master', 4, {
  op: ['u32', 0],
});
export const vfio_region_dma_range = defineStruct('vfio_region_dma_range', 16, {
  offset: ['u64', 0],
  length: ['u64', 8],
});
/** dma_ranges[] (vfio_region_dma_range) follow at 16. */
export const vfio_device_feature_dma_buf = defineStruct('vfio_device_feature_dma_buf', 16, {
  region_index: ['u32', 0],
  open_flags: ['u32', 4],
  flags: ['u32', 8],
  nr_ranges: ['u32', 12],
});

// -------- Type1 IOMMU (container fd) --------
/** Seed era: 16 bytes (minsz = offsetofend('iova_pgsizes')); cap_offset/pad since v5.4. */
export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  iova_pgsizes: ['u64', 8],
  cap_offset: ['u32', 16],
  pad: ['u32', 20],
});
/** `end` is inclusive. */
export const vfio_iova_range = defineStruct('vfio_iova_range', 16, { start: ['u64', 0], end: ['u64', 8] });
/** Fixed part; iova_ranges[] (vfio_iova_range) follow at 16. */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct('vfio_iommu_type1_info_cap_iova_range', 16, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  nr_iovas: ['u32', 8],
  reserved: ['u32', 12],
});
export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', 32, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  flags: ['u32', 8],
  pgsize_bitmap: ['u64', 16],
  max_dirty_bitmap_size: ['u64', 24],
});
export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', 12, {
  header_id: ['u16', 0],
  header_version: ['u16', 2],
  header_next: ['u32', 4],
  avail: ['u32', 8],
});
export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', 32, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  vaddr: ['u64', 8],
  iova: ['u64', 16],
  size: ['u64', 24],
});
/** data[] (a vfio_bitmap with GET_DIRTY_BITMAP) follows at 24. */
export const vfio_iommu_type1_dma_unmap = defineStruct('vfio_iommu_type1_dma_unmap', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  iova: ['u64', 8],
  size: ['u64', 16],
});
/** data is a user pointer to the bitmap (one bit per page). */
export const vfio_bitmap = defineStruct('vfio_bitmap', 24, {
  pgsize: ['u64', 0],
  size: ['u64', 8],
  data: ['u64', 16],
});
/** data[] (vfio_iommu_type1_dirty_bitmap_get for GET_BITMAP) follows at 8. */
export const vfio_iommu_type1_dirty_bitmap = defineStruct('vfio_iommu_type1_dirty_bitmap', 8, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
});
export const vfio_iommu_type1_dirty_bitmap_get = defineStruct('vfio_iommu_type1_dirty_bitmap_get', 40, {
  iova: ['u64', 0],
  size: ['u64', 8],
  bitmap_pgsize: ['u64', 16],
  bitmap_size: ['u64', 24],
  bitmap_data: ['u64', 32],
});

// -------- sPAPR TCE IOMMU (container fd) --------
export const vfio_iommu_spapr_tce_ddw_info = defineStruct('vfio_iommu_spapr_tce_ddw_info', 16, {
  pgsizes: ['u64', 0],
  max_dynamic_windows_supported: ['u32', 8],
  levels: ['u32', 12],
});
/** Seed era: 16 bytes (minsz = offsetofend('dma32_window_size')); ddw since v4.2. */
export const vfio_iommu_spapr_tce_info = defineStruct('vfio_iommu_spapr_tce_info', 32, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  dma32_window_start: ['u32', 8],
  dma32_window_size: ['u32', 12],
  ddw_pgsizes: ['u64', 16],
  ddw_max_dynamic_windows_supported: ['u32', 24],
  ddw_levels: ['u32', 28],
});
export const vfio_eeh_pe_err = defineStruct('vfio_eeh_pe_err', 24, {
  type: ['u32', 0],
  func: ['u32', 4],
  addr: ['u64', 8],
  mask: ['u64', 16],
});
/** Seed era: 12 bytes (minsz = offsetofend('op')); the err union (8-aligned, @16) since v4.3. */
export const vfio_eeh_pe_op = defineStruct('vfio_eeh_pe_op', 40, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  op: ['u32', 8],
  err_type: ['u32', 16],
  err_func: ['u32', 20],
  err_addr: ['u64', 24],
  err_mask: ['u64', 32],
});
/** Also the argument of VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY. */
export const vfio_iommu_spapr_register_memory = defineStruct('vfio_iommu_spapr_register_memory', 24, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  vaddr: ['u64', 8],
  size: ['u64', 16],
});
export const vfio_iommu_spapr_tce_create = defineStruct('vfio_iommu_spapr_tce_create', 40, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  page_shift: ['u32', 8],
  __resv1: ['u32', 12],
  window_size: ['u64', 16],
  levels: ['u32', 24],
  __resv2: ['u32', 28],
  start_addr: ['u64', 32],
});
export const vfio_iommu_spapr_tce_remove = defineStruct('vfio_iommu_spapr_tce_remove', 16, {
  argsz: ['u32', 0],
  flags: ['u32', 4],
  start_addr: ['u64', 8],
});

/** Every layout above, for tooling (debug dumps, layout tests). */
export const VFIO_STRUCTS: readonly StructLayout<FieldTable>[] = [
  vfio_info_cap_header,
  vfio_group_status,
  vfio_device_info,
  vfio_device_info_cap_pci_atomic_comp,
  vfio_region_info,
  vfio_region_sparse_mmap_area,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_region_info_cap_nvlink2_ssatgt,
  vfio_region_info_cap_nvlink2_lnkspd,
  vfio_region_gfx_edid,
  vfio_device_migration_info,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset_info,
  vfio_pci_hot_reset,
  vfio_device_gfx_plane_info,
  vfio_device_ioeventfd,
  vfio_device_feature,
  vfio_device_bind_iommufd,
  vfio_device_attach_iommufd_pt,
  vfio_device_detach_iommufd_pt,
  vfio_device_feature_migration,
  vfio_device_feature_mig_state,
  vfio_precopy_info,
  vfio_device_low_power_entry_with_wakeup,
  vfio_device_feature_dma_logging_control,
  vfio_device_feature_dma_logging_range,
  vfio_device_feature_dma_logging_report,
  vfio_device_feature_mig_data_size,
  vfio_device_feature_bus_master,
  vfio_region_dma_range,
  vfio_device_feature_dma_buf,
  vfio_iommu_type1_info,
  vfio_iova_range,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_spapr_tce_ddw_info,
  vfio_iommu_spapr_tce_info,
  vfio_eeh_pe_err,
  vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_remove,
];
