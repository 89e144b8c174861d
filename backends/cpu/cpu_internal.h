/* Declarations shared by the files of the CPU backend. Private to backends/cpu: nothing
 * here is part of the plugin ABI, and every symbol is hidden so that the module exports
 * only ferry_backend_entry. */
#ifndef FERRY_CPU_INTERNAL_H
#define FERRY_CPU_INTERNAL_H

#include <ferry/backend.h>

#define CPU_HIDDEN __attribute__((visibility("hidden")))

/* The core's services, set once by ferry_backend_entry before any other entry runs. */
CPU_HIDDEN extern const ferry_host_api *cpu_host;

/* Kernel entries of the ops table (cpu_cast.c); same contracts as in backend.h. */
CPU_HIDDEN ferry_status cpu_fill(int32_t device, const ferry_kernel_tensor *out,
                                 const void *value);
CPU_HIDDEN ferry_status cpu_cast(int32_t device, const ferry_kernel_tensor *out,
                                 const ferry_kernel_tensor *in);
CPU_HIDDEN ferry_status cpu_copy_strided(int32_t device, const ferry_kernel_tensor *out,
                                         const ferry_kernel_tensor *in);

#endif /* FERRY_CPU_INTERNAL_H */
