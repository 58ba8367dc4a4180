import {
  EEH_OPT_DISABLE,
  EEH_OPT_ENABLE,
  EEH_OPT_THAW_DMA,
  EEH_OPT_THAW_MMIO,
  EEH_RESET_DEACTIVATE,
  EEH_RESET_FUNDAMENTAL,
  EEH_RESET_HOT,
  eehCore,
  eehIommuGroupToPe,
  eehPeConfigure,
  eehPeGetState,
  eehPeInjectErr,
  eehPeReset,
  eehPeSetOption,
  type IommuGroup,
} from '../../iommu/index.ts';
import { fail, traced } from '../../kernel/index.ts';
import {
  EFAULT,
  EINVAL,
  ENODEV,
  VFIO_CHECK_EXTENSION,
  VFIO_EEH,
  VFIO_EEH_PE_CONFIGURE,
  VFIO_EEH_PE_DISABLE,
  VFIO_EEH_PE_ENABLE,
  VFIO_EEH_PE_GET_STATE,
  VFIO_EEH_PE_INJECT_ERR,
  VFIO_EEH_PE_OP,
  VFIO_EEH_PE_RESET_DEACTIVATE,
  VFIO_EEH_PE_RESET_FUNDAMENTAL,
  VFIO_EEH_PE_RESET_HOT,
  VFIO_EEH_PE_UNFREEZE_DMA,
  VFIO_EEH_PE_UNFREEZE_IO,
  vfio_eeh_pe_op,
} from '../../uapi/index.ts';
import { copyStructFromUser } from './uaccess.ts';

/*
 * drivers/vfio/vfio_spapr_eeh.c (4.1; folded into vfio_iommu_spapr_tce.c
 * by 6.x): CHECK_EXTENSION(VFIO_EEH) and VFIO_EEH_PE_OP on the PE behind
 * an IOMMU group. `injectErr` selects 6.x, which adds INJECT_ERR.
 */
export const vfioSpaprIommuEehIoctl = traced(
  'vfio_spapr_iommu_eeh_ioctl',
  (group: IommuGroup | undefined, cmd: number, arg: bigint, injectErr: boolean): number => {
    const eeh = eehCore();
    switch (cmd) {
      case VFIO_CHECK_EXTENSION:
        return arg === BigInt(VFIO_EEH) && eeh?.enabled === true ? 1 : 0;
      case VFIO_EEH_PE_OP: {
        const pe = eehIommuGroupToPe(eeh, group);
        if (pe === undefined || eeh === undefined)
          return fail(ENODEV, `VFIO_EEH_PE_OP: IOMMU group ${group?.id ?? '?'} has no EEH PE`);
        const minsz = vfio_eeh_pe_op.offsetofend('op');
        let op = copyStructFromUser(vfio_eeh_pe_op, arg, minsz);
        if (op === undefined) return -EFAULT;
        if (op.argsz < minsz || op.flags !== 0)
          return fail(
            EINVAL,
            `VFIO_EEH_PE_OP: argsz ${op.argsz} < ${minsz} or flags 0x${op.flags.toString(16)} != 0`,
          );
        switch (op.op) {
          case VFIO_EEH_PE_DISABLE:
            return eehPeSetOption(eeh, pe, EEH_OPT_DISABLE);
          case VFIO_EEH_PE_ENABLE:
            return eehPeSetOption(eeh, pe, EEH_OPT_ENABLE);
          case VFIO_EEH_PE_UNFREEZE_IO:
            return eehPeSetOption(eeh, pe, EEH_OPT_THAW_MMIO);
          case VFIO_EEH_PE_UNFREEZE_DMA:
            return eehPeSetOption(eeh, pe, EEH_OPT_THAW_DMA);
          case VFIO_EEH_PE_GET_STATE:
            return eehPeGetState(eeh, pe);
          case VFIO_EEH_PE_RESET_DEACTIVATE:
            return eehPeReset(eeh, pe, EEH_RESET_DEACTIVATE, true);
          case VFIO_EEH_PE_RESET_HOT:
            return eehPeReset(eeh, pe, EEH_RESET_HOT, true);
          case VFIO_EEH_PE_RESET_FUNDAMENTAL:
            return eehPeReset(eeh, pe, EEH_RESET_FUNDAMENTAL, true);
          case VFIO_EEH_PE_CONFIGURE:
            return eehPeConfigure(eeh, pe);
          case VFIO_EEH_PE_INJECT_ERR: {
            if (!injectErr) break;
            const full = vfio_eeh_pe_op.offsetofend('err_mask');
            if (op.argsz < full) return fail(EINVAL, `VFIO_EEH_PE_INJECT_ERR: argsz ${op.argsz} < ${full}`);
            op = copyStructFromUser(vfio_eeh_pe_op, arg, full);
            if (op === undefined) return -EFAULT;
            return eehPeInjectErr(eeh, pe, op.err_type, op.err_func);
          }
        }
        return fail(EINVAL, `VFIO_EEH_PE_OP: unknown op ${op.op}`);
      }
    }
    return -EINVAL;
  },
  (g, cmd) => `group=${g?.id ?? 'NULL'} cmd=0x${cmd.toString(16)}`,
);
