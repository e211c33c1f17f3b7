/*
 * Instantiates tile_impl.h for one instruction set: float and double, wide and narrow forms.
 * Parameters (macros): FC_ISA name token, FC_TARGET function attributes, FC_VBYTES vector width,
 * FC_MR_WIDE rows of the wide form (2 vectors of columns); the narrow form (1 vector) has twice
 * as many rows.  Included once per instruction set by tile.h; it has no guard.
 */
#define FC_ISA_CAT_(p, isa, form) p##_##isa##_##form
#define FC_ISA_CAT(p, isa, form) FC_ISA_CAT_(p, isa, form)

#define FC_T float
#define FC_IT int32_t
#define FC_MR FC_MR_WIDE
#define FC_NV 2
#define FC_ID FC_ISA_CAT(f, FC_ISA, wide)
#include "tile_impl.h"
#undef FC_MR
#undef FC_NV
#undef FC_ID
#define FC_MR (2 * FC_MR_WIDE)
#define FC_NV 1
#define FC_ID FC_ISA_CAT(f, FC_ISA, narrow)
#include "tile_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_MR
#undef FC_NV
#undef FC_ID

#define FC_T double
#define FC_IT int64_t
#define FC_MR FC_MR_WIDE
#define FC_NV 2
#define FC_ID FC_ISA_CAT(d, FC_ISA, wide)
#include "tile_impl.h"
#undef FC_MR
#undef FC_NV
#undef FC_ID
#define FC_MR (2 * FC_MR_WIDE)
#define FC_NV 1
#define FC_ID FC_ISA_CAT(d, FC_ISA, narrow)
#include "tile_impl.h"
#undef FC_T
#undef FC_IT
#undef FC_MR
#undef FC_NV
#undef FC_ID

#undef FC_ISA_CAT_
#undef FC_ISA_CAT
