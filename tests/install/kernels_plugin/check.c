/* Runs neg on tinyplan:0 (the plugin built from the installed kernels SDK) over a
 * transposed view, with fallbacks refused (FERRY_STRICT_DEVICE=tinyplan), so the values
 * can only come from the plugin's fk_plan-driven kernel. */
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

static int fail(const char *what)
{
    fprintf(stderr, "tinyplan check: %s: %s\n", what, ferry_last_error());
    return 1;
}

int main(void)
{
    float v[12];
    for (int i = 0; i < 12; i++)
        v[i] = (float)i + 0.5f;
    int64_t shape[2] = {3, 4};
    ferry_tensor *x = ferry_tensor_from_data(v, FERRY_FLOAT32, 2, shape, "tinyplan:0");
    if (!x)
        return fail("from_data");
    ferry_tensor *xt = ferry_transpose(x, 0, 1); /* [4, 3], strides (1, 4) */
    ferry_tensor *y = xt ? ferry_neg(xt) : NULL;
    if (!y)
        return fail("neg");
    float got[12];
    if (ferry_tensor_copy_to_host(y, got, sizeof got) != FERRY_OK)
        return fail("copy_to_host");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            if (got[i * 3 + j] != -v[j * 4 + i]) {
                fprintf(stderr, "tinyplan check: y[%d][%d] = %g, expected %g\n", i, j,
                        got[i * 3 + j], -v[j * 4 + i]);
                return 1;
            }
    /* exp passes fk_plan's contract check but tinyplan has no kernel for it: refused. */
    ferry_tensor *e = ferry_exp(x);
    if (e || ferry_last_status() != FERRY_ERR_UNSUPPORTED || !strstr(ferry_last_error(), "tinyplan"))
        return fail("exp should have been refused under FERRY_STRICT_DEVICE");
    printf("tinyplan check: neg planned by fk_plan from the installed SDK is right\n");
    ferry_tensor_release(y);
    ferry_tensor_release(xt);
    ferry_tensor_release(x);
    return 0;
}
