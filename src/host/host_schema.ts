/*
 * The JSON Schema of a host description file. This object is the source
 * of truth: the validator in description.ts walks it, and
 * schemas/host.schema.json is this object written out (a test keeps the two
 * equal; `node --import tsx scripts/readme-assets.ts` rewrites the file).
 *
 * "x-expect" is ours: how an error message names what a value should be
 * ('a PCI address (dddd:bb:dd.f)'), so errors point at the field and say
 * what is wrong in words.
 */
export interface SchemaNode {
  readonly type?: string | readonly string[];
  readonly description?: string;
  readonly enum?: readonly (string | number | boolean)[];
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean;
  readonly items?: SchemaNode;
  readonly $ref?: string;
  readonly default?: unknown;
  readonly examples?: readonly unknown[];
  readonly 'x-expect'?: string;
}

export interface RootSchema extends SchemaNode {
  readonly $schema: string;
  readonly $id: string;
  readonly title: string;
  readonly $defs: Readonly<Record<string, SchemaNode>>;
}

const u64: SchemaNode = {
  type: ['string', 'integer'],
  pattern: '^(0[xX][0-9a-fA-F]{1,16}|[0-9]{1,20})$',
  minimum: 0,
  'x-expect': 'a 64-bit address (an integer or a hex string such as "0xfee00000")',
};

export const hostSchema: RootSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'urn:vfio-ts:host-description',
  title: 'vfio-ts host description',
  description:
    'A simulated Linux machine for vfio-ts: architecture, kernel profile, IOMMU, PCI devices with their IOMMU groups and boot-time drivers, and the limits of the process that runs VFIO code on it.',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string', description: 'path or URL of this schema (ignored)' },
    description: { type: 'string', description: 'free text shown by `vfio-ts topology`' },
    arch: {
      enum: ['x86_64', 'ppc64'],
      default: 'x86_64',
      description: 'x86_64 uses vfio_iommu_type1; ppc64 uses vfio_iommu_spapr_tce',
    },
    kernel: {
      enum: ['4.1', '6.12'],
      default: '4.1',
      description: 'kernel profile: 4.1 (the seeds) or 6.12 (current long-term)',
    },
    pageSize: {
      enum: [4096, 65536],
      description: 'PAGE_SIZE: always 4096 on x86_64; 65536 (default) or 4096 on ppc64',
    },
    iommu: {
      type: 'object',
      additionalProperties: false,
      description: 'the platform IOMMU',
      properties: {
        addressWidth: {
          type: 'integer',
          minimum: 32,
          maximum: 64,
          default: 39,
          description: 'input address width in bits (VT-d: 39 or 48)',
        },
        intrRemap: {
          type: 'boolean',
          default: true,
          description: 'interrupt remapping (type1 refuses groups without it unless allow_unsafe_interrupts)',
        },
        cacheCoherent: { type: 'boolean', default: true, description: 'IOMMU_CAP_CACHE_COHERENCY' },
        reservedRegions: {
          type: 'array',
          description:
            'reserved IOVA ranges of every group (x86_64 default: the MSI window 0xfee00000-0xfeefffff)',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['start', 'end'],
            properties: {
              start: { $ref: '#/$defs/u64' },
              end: { $ref: '#/$defs/u64', description: 'inclusive' },
              type: { enum: ['msi', 'reserved', 'direct'], default: 'reserved' },
            },
          },
        },
        dma32WindowStart: { $ref: '#/$defs/u64', description: 'ppc64: start of the 32-bit DMA window' },
        dma32WindowSize: { $ref: '#/$defs/u64', description: 'ppc64: size of the 32-bit DMA window' },
      },
    },
    devices: {
      type: 'array',
      description: 'PCI functions, added in this order (a bridge before the devices behind it)',
      items: { $ref: '#/$defs/device' },
    },
    process: {
      type: 'object',
      additionalProperties: false,
      description: 'the process `vfio-ts run` and `vfio-ts demo` spawn',
      properties: {
        comm: { type: 'string', pattern: '^.{1,15}$', 'x-expect': 'a task name of 1 to 15 characters' },
        rlimitMemlock: { $ref: '#/$defs/size', description: 'RLIMIT_MEMLOCK in bytes ("64M", "unlimited")' },
        rlimitNofile: { type: 'integer', minimum: 3, maximum: 1048576, description: 'RLIMIT_NOFILE' },
        uid: { type: 'integer', minimum: 0 },
        gid: { type: 'integer', minimum: 0 },
      },
    },
  },
  $defs: {
    u64,
    bdf: {
      type: 'string',
      pattern: '^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]$',
      'x-expect': 'a PCI address (dddd:bb:dd.f)',
      examples: ['0000:00:03.0'],
    },
    id16: {
      type: ['string', 'integer'],
      pattern: '^(0[xX][0-9a-fA-F]{1,4}|[0-9]{1,5})$',
      minimum: 0,
      maximum: 65535,
      'x-expect': 'a 16-bit id (an integer or a hex string such as "0x1234")',
    },
    classCode: {
      type: ['string', 'integer'],
      pattern: '^(0[xX][0-9a-fA-F]{1,6}|[0-9]{1,8})$',
      minimum: 0,
      maximum: 16777215,
      'x-expect': 'a 24-bit class code (such as "0x020000")',
    },
    size: {
      type: ['string', 'integer'],
      pattern: '^([0-9]+[KMGT]?|0[xX][0-9a-fA-F]+|unlimited)$',
      minimum: 0,
      'x-expect': 'a size in bytes (an integer, "64K", "64M", "1G" or "unlimited")',
    },
    device: {
      type: 'object',
      additionalProperties: false,
      required: ['bdf'],
      properties: {
        bdf: { $ref: '#/$defs/bdf' },
        model: {
          type: 'string',
          default: 'generic',
          description: 'device model: generic, edu, ... (`vfio-ts topology --models` lists them)',
        },
        iommuGroup: {
          type: 'integer',
          minimum: 0,
          maximum: 65535,
          description: 'IOMMU group number; devices sharing one cannot be separated',
        },
        driver: {
          type: 'string',
          pattern: '^[A-Za-z0-9_-]{1,32}$',
          'x-expect': 'a driver name such as "e1000e", "pci-stub" or "vfio-pci"',
          description: 'host driver bound at boot (none if absent)',
        },
        parent: { $ref: '#/$defs/bdf', description: 'the upstream bridge (listed earlier)' },
        vendor: { $ref: '#/$defs/id16', description: 'generic model: PCI vendor id' },
        device: { $ref: '#/$defs/id16', description: 'generic model: PCI device id' },
        class: { $ref: '#/$defs/classCode', description: 'generic model: class code' },
        pcie: { type: 'boolean', default: true, description: 'PCI Express function (4 KiB config space)' },
        dmaMask: {
          type: 'integer',
          minimum: 1,
          maximum: 64,
          description: 'edu: DMA address bits (default 28)',
        },
      },
    },
  },
};
