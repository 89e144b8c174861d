/* Uses the installed headers and library: creates a tensor, moves it, reads it back. */
#include <stdio.h>
#include <string.h>

#include <ferry/dtype_info.h>
#include <ferry/ferry.h>

int main(void)
{
    float v[3] = {1, 2, 3};
    int64_t n = 3;
    ferry_tensor *t = ferry_tensor_from_data(v, FERRY_FLOAT32, 1, &n, "cpu");
    ferry_tensor *d = t ? ferry_tensor_to_dtype(t, FERRY_FLOAT64) : NULL;
    double out[3] = {0};
    if (!d || ferry_tensor_copy_to_host(d, out, sizeof out) != FERRY_OK || out[2] != 3.0) {
        fprintf(stderr, "consumer: %s\n", ferry_last_error());
        return 1;
    }
    /* The SDK's header-only dtype table agrees with the library's. */
    for (int i = 0; i < FERRY_NUM_DTYPES; i++) {
        ferry_dtype dt = (ferry_dtype)i;
        if (ferry_dtype_info_size(dt) != ferry_dtype_size(dt) ||
            strcmp(ferry_dtype_info_name(dt), ferry_dtype_name(dt)) != 0 ||
            ferry_dtype_info_is_floating(dt) != ferry_dtype_is_floating(dt)) {
            fprintf(stderr, "consumer: ferry/dtype_info.h disagrees on dtype %d\n", i);
            return 1;
        }
    }
    printf("consumer: ferry %s works from the installed tree\n", ferry_version());
    ferry_tensor_release(d);
    ferry_tensor_release(t);
    return 0;
}
