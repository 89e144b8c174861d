/* Reverse-mode autograd: graph nodes, the backward engine (reverse topological order on
 * the calling thread), .grad and its accumulation, grad mode, version checks of saved
 * tensors, and the backward formulas of views and copies, whose forwards live in
 * views.c and copy.c (DESIGN.md, Autograd). The formulas of the other ops sit next to
 * their forwards in ops.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Thread_local bool ferry__grad_off;

/* .grad of a tensor, shared with the node that made it when retain_grad was called. */
typedef struct ferry_grad_slot {
    atomic_long refs;
    ferry_tensor *grad;
} ferry_grad_slot;

typedef struct edge {
    ferry_node *fn;     /* the input's grad_fn (strong), or */
    ferry_tensor *leaf; /* the input itself when it is a leaf that requires grad (strong) */
    ferry_dtype dtype;
    int32_t ndim;
    int64_t *shape;
    int64_t inline_shape[FERRY_INLINE_DIMS];
} edge;

typedef struct saved {
    ferry_tensor *t;
    bool used; /* stays set after the tensor is freed */
    long version;
    bool output;
} saved;

struct ferry_node {
    atomic_long refs;
    const char *name;
    ferry_backward_fn backward;
    int n_inputs;
    edge in[FERRY_NODE_MAX_INPUTS];
    saved saved[FERRY_NODE_MAX_SAVED];
    bool has_saved; /* something was saved: a second backward after freeing fails */
    bool released;  /* saved tensors were freed by a backward without retain_graph */
    ferry_grad_slot *retained; /* retain_grad() of the node's output */
    int nparams;
    int64_t *params;
    int64_t inline_params[8];
    double scalar;
};

/* ---- grad mode ---- */

FERRY_API bool ferry_grad_enabled(void)
{
    return !ferry__grad_off;
}

FERRY_API bool ferry_set_grad_enabled(bool on)
{
    bool prev = !ferry__grad_off;
    ferry__grad_off = !on;
    return prev;
}

/* ---- slots ---- */

static ferry_grad_slot *slot_of(ferry_tensor *t)
{
    if (!t->grad_slot) {
        ferry_grad_slot *s = calloc(1, sizeof *s);
        if (!s) {
            ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for a gradient slot");
            return NULL;
        }
        atomic_init(&s->refs, 1);
        t->grad_slot = s;
    }
    return t->grad_slot;
}

static void slot_release(ferry_grad_slot *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    ferry_tensor_release(s->grad);
    free(s);
}

/* ---- nodes ---- */

ferry_node *ferry__node_create(const char *name, ferry_backward_fn fn, int n_inputs,
                               ferry_tensor *const *inputs)
{
    ferry_node *n = malloc(sizeof *n);
    if (!n) {
        ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for an autograd node");
        return NULL;
    }
    atomic_init(&n->refs, 1);
    n->name = name;
    n->backward = fn;
    n->n_inputs = n_inputs;
    n->has_saved = false;
    n->released = false;
    n->retained = NULL;
    n->nparams = 0;
    n->params = n->inline_params;
    n->scalar = 0.0;
    memset(n->saved, 0, sizeof n->saved);
    for (int i = 0; i < n_inputs; i++) {
        edge *e = &n->in[i];
        ferry_tensor *t = inputs[i];
        e->fn = NULL;
        e->leaf = NULL;
        e->shape = e->inline_shape;
        e->ndim = 0;
        e->dtype = FERRY_FLOAT32;
        if (!t)
            continue;
        e->dtype = t->dtype;
        if (t->ndim > FERRY_INLINE_DIMS) {
            e->shape = malloc((size_t)t->ndim * sizeof(int64_t));
            if (!e->shape) {
                e->shape = e->inline_shape;
                n->n_inputs = i;
                ferry__node_release(n);
                ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for an autograd node");
                return NULL;
            }
        }
        e->ndim = t->ndim;
        memcpy(e->shape, t->shape, (size_t)t->ndim * sizeof(int64_t));
        if (!t->requires_grad)
            continue;
        if (t->grad_fn) {
            e->fn = t->grad_fn;
            atomic_fetch_add_explicit(&e->fn->refs, 1, memory_order_relaxed);
        } else {
            e->leaf = ferry_tensor_retain(t);
        }
    }
    return n;
}

ferry_status ferry__node_save(ferry_node *n, int i, ferry_tensor *t, bool is_output)
{
    saved *s = &n->saved[i];
    /* An output is kept as a plain alias: its grad_fn is this node, and holding it
     * would make a cycle. ferry__node_saved() gives it back its grad_fn. */
    s->t = is_output ? ferry__tensor_alias(t) : ferry_tensor_retain(t);
    if (!s->t)
        return ferry_last_status();
    s->version = atomic_load_explicit(&t->storage->version, memory_order_relaxed);
    s->output = is_output;
    s->used = true;
    n->has_saved = true;
    return FERRY_OK;
}

/* PyTorch's type description of a tensor: "torch.FloatTensor", "torch.cuda.FloatTensor". */
static void type_desc(const ferry_tensor *t, char *buf, size_t cap)
{
    static const char *const names[FERRY_NUM_DTYPES] = {
        "BoolTensor", "ByteTensor", "CharTensor",     "ShortTensor", "IntTensor",
        "LongTensor", "HalfTensor", "BFloat16Tensor", "FloatTensor", "DoubleTensor"};
    const char *be = t->storage->backend->name;
    if (strcmp(be, "cpu") == 0)
        snprintf(buf, cap, "ferry.%s", names[t->dtype]);
    else
        snprintf(buf, cap, "ferry.%s.%s", be, names[t->dtype]);
}

static void sizes_desc(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]");
}

static const char *second_backward_msg =
    "Trying to backward through the graph a second time (or directly access saved tensors "
    "after they have already been freed). Saved intermediate values of the graph are freed "
    "when you call .backward() or autograd.grad(). Specify retain_graph=True if you need to "
    "backward through the graph a second time or if you need to access saved tensors after "
    "calling backward.";

ferry_tensor *ferry__node_saved(ferry_node *n, int i, ferry_status *st)
{
    saved *s = &n->saved[i];
    if (!s->t && !s->used)
        return NULL;
    if (n->released) {
        *st = ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s", second_backward_msg);
        return NULL;
    }
    long now = atomic_load_explicit(&s->t->storage->version, memory_order_relaxed);
    if (now != s->version) {
        char type[64], sizes[512], origin[128] = "";
        type_desc(s->t, type, sizeof type);
        sizes_desc(s->t->ndim, s->t->shape, sizes, sizeof sizes);
        const ferry_node *maker = s->output ? n : s->t->grad_fn;
        if (maker)
            snprintf(origin, sizeof origin, ", which is output 0 of %s,", maker->name);
        *st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                           "one of the variables needed for gradient computation has been "
                           "modified by an inplace operation: [%s %s]%s is at version %ld; "
                           "expected version %ld instead.",
                           type, sizes, origin, now, s->version);
        return NULL;
    }
    if (!s->output || ferry__grad_off)
        return ferry_tensor_retain(s->t);
    /* create_graph: the output comes back as the node's result, so formulas that use it
     * are differentiated through this node. */
    ferry_tensor *a = ferry__tensor_alias(s->t);
    if (!a) {
        *st = ferry_last_status();
        return NULL;
    }
    atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
    a->grad_fn = n;
    a->requires_grad = true;
    return a;
}

int64_t *ferry__node_params_alloc(ferry_node *n, int count)
{
    if (count > (int)(sizeof n->inline_params / sizeof n->inline_params[0])) {
        n->params = malloc((size_t)count * sizeof(int64_t));
        if (!n->params) {
            n->params = n->inline_params;
            ferry__error(FERRY_ERR_OUT_OF_MEMORY, "out of host memory for an autograd node");
            return NULL;
        }
    }
    n->nparams = count;
    return n->params;
}

int64_t *ferry__node_params(ferry_node *n, int *count)
{
    if (count)
        *count = n->nparams;
    return n->params;
}

double *ferry__node_scalar(ferry_node *n)
{
    return &n->scalar;
}

bool ferry__node_needs(const ferry_node *n, int input)
{
    return input < n->n_inputs && (n->in[input].fn || n->in[input].leaf);
}

int ferry__node_input_ndim(const ferry_node *n, int input)
{
    return n->in[input].ndim;
}

const int64_t *ferry__node_input_shape(const ferry_node *n, int input)
{
    return n->in[input].shape;
}

void ferry__node_attach(ferry_node *n, ferry_tensor *result)
{
    ferry__node_release(result->grad_fn);
    result->grad_fn = n;
    result->requires_grad = true;
}

static void release_saved(ferry_node *n)
{
    for (int i = 0; i < FERRY_NODE_MAX_SAVED; i++) {
        ferry_tensor_release(n->saved[i].t);
        n->saved[i].t = NULL;
    }
}

/* Iterative, so that dropping a long chain of nodes does not recurse once per node. */
void ferry__node_release(ferry_node *n)
{
    ferry_node *small[32];
    ferry_node **stack = small;
    size_t cap = 32, len = 0;
    if (n)
        stack[len++] = n;
    while (len > 0) {
        ferry_node *x = stack[--len];
        if (atomic_fetch_sub_explicit(&x->refs, 1, memory_order_acq_rel) != 1)
            continue;
        release_saved(x);
        slot_release(x->retained);
        for (int i = 0; i < x->n_inputs; i++) {
            edge *e = &x->in[i];
            ferry_tensor_release(e->leaf);
            if (e->shape != e->inline_shape)
                free(e->shape);
            if (!e->fn)
                continue;
            if (len == cap) {
                ferry_node **bigger = malloc(2 * cap * sizeof *bigger);
                if (!bigger) {
                    /* No room to defer: release it here, recursing this once. */
                    ferry__node_release(e->fn);
                    continue;
                }
                memcpy(bigger, stack, len * sizeof *bigger);
                if (stack != small)
                    free(stack);
                stack = bigger;
                cap *= 2;
            }
            stack[len++] = e->fn;
        }
        if (x->params != x->inline_params)
            free(x->params);
        free(x);
    }
    if (stack != small)
        free(stack);
}

void ferry__autograd_release(ferry_tensor *t)
{
    ferry__node_release(t->grad_fn);
    slot_release(t->grad_slot);
}

/* ---- in-place checks ---- */

static ferry_status view_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads);

/* Whether t is a leaf that requires grad or a view (through view nodes) of one: writing
 * into either would change the leaf in place. */
static bool is_leaf_or_view_of_leaf(const ferry_tensor *t)
{
    if (!t->requires_grad)
        return false;
    const ferry_node *n = t->grad_fn;
    while (n && n->backward == view_backward && n->in[0].fn)
        n = n->in[0].fn;
    return !n || (n->backward == view_backward && n->in[0].leaf);
}

bool ferry__is_view_output(const ferry_tensor *t)
{
    return t->grad_fn && t->grad_fn->backward == view_backward;
}

ferry_status ferry__inplace_check(const char *fn, const ferry_tensor *out, bool inputs_need)
{
    if (ferry__grad_off)
        return FERRY_OK;
    if (is_leaf_or_view_of_leaf(out))
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "a %sleaf Variable that requires grad is being used in an in-place "
                            "operation.",
                            out->grad_fn ? "view of a " : "");
    size_t len = inputs_need ? strlen(fn) : 0;
    if (len > 0 && fn[len - 1] == '_')
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: writing a tensor that requires grad into one that does not is "
                            "not differentiable in ferry yet; detach() the source or write under "
                            "no_grad",
                            fn);
    if (inputs_need)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s(): functions with out=... arguments don't support automatic "
                            "differentiation, but one of the arguments requires grad.",
                            fn);
    if (out->requires_grad)
        return ferry__error(FERRY_ERR_UNSUPPORTED,
                            "%s: in-place write into a tensor that requires grad (the output of "
                            "%s): ferry's autograd does not rebase history yet; compute the "
                            "result out of place",
                            fn, out->grad_fn->name);
    return FERRY_OK;
}

/* ---- helpers for formulas ---- */

ferry_tensor *ferry__sum_to(ferry_tensor *g, int ndim, const int64_t *shape)
{
    bool same = g->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = g->shape[i] == shape[i];
    if (same)
        return ferry_tensor_retain(g);
    int lead = g->ndim - ndim;
    int dims[FERRY_MAX_DIMS], nd = 0;
    for (int i = 0; i < g->ndim; i++)
        if (i < lead || (shape[i - lead] == 1 && g->shape[i] != 1))
            dims[nd++] = i;
    if (nd == 0)
        return ferry_reshape(g, ndim, shape);
    ferry_tensor *s = ferry_sum(g, nd, dims, true);
    if (!s)
        return NULL;
    ferry_tensor *r = ferry_reshape(s, ndim, shape);
    ferry_tensor_release(s);
    return r;
}

/* ---- views and copies ---- */

static ferry_status view_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads);
static ferry_status copy_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads);

static const char *const view_names[] = {
    "ViewBackward0",      "UnsafeViewBackward0", "SqueezeBackward1", "SqueezeBackward0",
    "UnsqueezeBackward0", "TransposeBackward0",  "PermuteBackward0", "SliceBackward0",
    "ExpandBackward0"};

/* A hook failing to record turns the op's success into a failure: a result that should
 * carry a gradient must not silently lose it. */
static ferry_tensor *record_or_fail(ferry_tensor *r, ferry_node *n)
{
    if (!n) {
        ferry_tensor_release(r);
        return NULL;
    }
    ferry__node_attach(n, r);
    return r;
}

ferry_tensor *ferry__ag_view(ferry_tensor *r, ferry_tensor *t, ferry_view_kind kind,
                             const int64_t *params, int nparams)
{
    if (!r)
        return NULL;
    if (!ferry__grad_wanted(t, NULL) || !ferry_dtype_is_floating(r->dtype)) {
        r->requires_grad = false;
        return r;
    }
    ferry_node *n = ferry__node_create(view_names[kind], view_backward, 1, &t);
    if (n) {
        int64_t *p = ferry__node_params_alloc(n, nparams + 1);
        if (p) {
            p[0] = kind;
            if (nparams > 0)
                memcpy(p + 1, params, (size_t)nparams * sizeof *p);
        } else {
            ferry__node_release(n);
            n = NULL;
        }
    }
    return record_or_fail(r, n);
}

/* The gradient of a slice: zeros of the input's shape with g written into the slice.
 * Its own backward (for create_graph) takes the same slice again. */
static ferry_status slice_backward_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    grads[0] = ferry_slice(g, (int)p[0], p[1], p[2], p[3]);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

static ferry_tensor *slice_backward(ferry_tensor *g, int ndim, const int64_t *shape,
                                    const int64_t *p)
{
    char dev[32];
    ferry__tensor_device_str(g, dev);
    ferry_tensor *z = ferry_zeros(g->dtype, ndim, shape, dev);
    if (!z)
        return NULL;
    bool prev = ferry_set_grad_enabled(false);
    ferry_tensor *part = ferry_slice(z, (int)p[0], p[1], p[2], p[3]);
    ferry_status st = part ? ferry__copy_into(part, g) : ferry_last_status();
    ferry_tensor_release(part);
    ferry_set_grad_enabled(prev);
    if (st != FERRY_OK) {
        ferry_tensor_release(z);
        return NULL;
    }
    if (ferry__grad_wanted(g, NULL)) {
        ferry_node *n = ferry__node_create("SliceBackwardBackward0", slice_backward_backward, 1, &g);
        int64_t *q = n ? ferry__node_params_alloc(n, 4) : NULL;
        if (!q) {
            ferry__node_release(n);
            ferry_tensor_release(z);
            return NULL;
        }
        memcpy(q, p, 4 * sizeof *q);
        ferry__node_attach(n, z);
    }
    return z;
}

static ferry_status view_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int np;
    int64_t *p = ferry__node_params(n, &np);
    int ndim = ferry__node_input_ndim(n, 0);
    const int64_t *shape = ferry__node_input_shape(n, 0);
    ferry_tensor *r = NULL;
    switch ((ferry_view_kind)p[0]) {
    case FERRY_VIEW_VIEW:
    case FERRY_VIEW_RESHAPE_COPY:
    case FERRY_VIEW_SQUEEZE_DIM:
    case FERRY_VIEW_SQUEEZE_ALL:
    case FERRY_VIEW_UNSQUEEZE: r = ferry_reshape(g, ndim, shape); break;
    case FERRY_VIEW_TRANSPOSE: r = ferry_transpose(g, (int)p[1], (int)p[2]); break;
    case FERRY_VIEW_PERMUTE: {
        int inv[FERRY_MAX_DIMS];
        for (int i = 0; i < np - 1; i++)
            inv[p[1 + i]] = i;
        r = ferry_permute(g, np - 1, inv);
        break;
    }
    case FERRY_VIEW_SLICE: r = slice_backward(g, ndim, shape, p + 1); break;
    case FERRY_VIEW_EXPAND: r = ferry__sum_to(g, ndim, shape); break;
    }
    grads[0] = r;
    return r ? FERRY_OK : ferry_last_status();
}

ferry_tensor *ferry__ag_copy(ferry_tensor *r, ferry_tensor *t, ferry_copy_kind kind)
{
    if (!r)
        return NULL;
    if (!ferry__grad_wanted(t, NULL) || !ferry_dtype_is_floating(r->dtype)) {
        r->requires_grad = false;
        return r;
    }
    ferry_node *n = ferry__node_create(kind == FERRY_COPY_TO ? "ToCopyBackward0" : "CloneBackward0",
                                       copy_backward, 1, &t);
    if (n) {
        /* The source's device, for the gradient to go back there. */
        int64_t *p = ferry__node_params_alloc(n, 2);
        p[0] = (int64_t)(intptr_t)t->storage->backend;
        p[1] = t->storage->device;
    }
    return record_or_fail(r, n);
}

static ferry_status copy_backward(ferry_node *n, ferry_tensor *g, ferry_tensor **grads)
{
    int64_t *p = ferry__node_params(n, NULL);
    const ferry_backend *be = (const ferry_backend *)(intptr_t)p[0];
    if (be == g->storage->backend && p[1] == g->storage->device) {
        /* A gradient must not alias the incoming one when it is stored as .grad and
         * accumulated into; the engine clones shared gradients, so passing it is safe. */
        grads[0] = ferry_tensor_retain(g);
        return FERRY_OK;
    }
    char dev[32];
    ferry__device_str(be, (int32_t)p[1], dev);
    grads[0] = ferry_tensor_to(g, dev);
    return grads[0] ? FERRY_OK : ferry_last_status();
}

/* ---- the engine ---- */

typedef struct task {
    ferry_node *n;
    int deps;
    bool needed;
    ferry_tensor *grad; /* sum of the gradients that reached the node's output */
} task;

typedef struct graph {
    task *tasks;
    size_t len, cap;
    size_t *table; /* open addressing: index + 1 into tasks, 0 = empty */
    size_t table_cap;
} graph;

static size_t hash_ptr(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static long graph_find(const graph *g, const ferry_node *n)
{
    if (!g->table_cap)
        return -1;
    for (size_t h = hash_ptr(n, g->table_cap);; h = (h + 1) & (g->table_cap - 1)) {
        size_t v = g->table[h];
        if (v == 0)
            return -1;
        if (g->tasks[v - 1].n == n)
            return (long)(v - 1);
    }
}

static ferry_status graph_rehash(graph *g, size_t cap)
{
    size_t *t = calloc(cap, sizeof *t);
    if (!t)
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "backward: out of host memory for the graph");
    free(g->table);
    g->table = t;
    g->table_cap = cap;
    for (size_t i = 0; i < g->len; i++) {
        size_t h = hash_ptr(g->tasks[i].n, cap);
        while (t[h])
            h = (h + 1) & (cap - 1);
        t[h] = i + 1;
    }
    return FERRY_OK;
}

static ferry_status graph_add(graph *g, ferry_node *n, long *index)
{
    if (g->len == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        task *t = realloc(g->tasks, cap * sizeof *t);
        if (!t)
            return ferry__error(FERRY_ERR_OUT_OF_MEMORY,
                                "backward: out of host memory for the graph");
        g->tasks = t;
        g->cap = cap;
    }
    g->tasks[g->len] = (task){.n = n};
    g->len++;
    if (2 * g->len > g->table_cap) {
        ferry_status st = graph_rehash(g, g->table_cap ? 2 * g->table_cap : 128);
        if (st != FERRY_OK) {
            g->len--;
            return st;
        }
    } else {
        size_t h = hash_ptr(n, g->table_cap);
        while (g->table[h])
            h = (h + 1) & (g->table_cap - 1);
        g->table[h] = g->len;
    }
    *index = (long)g->len - 1;
    return FERRY_OK;
}

static void graph_free(graph *g)
{
    for (size_t i = 0; i < g->len; i++)
        ferry_tensor_release(g->tasks[i].grad);
    free(g->tasks);
    free(g->table);
}

/* *acc += g, out of place, so a gradient handed on is never changed under its holder. */
static ferry_status accumulate(ferry_tensor **acc, ferry_tensor *g)
{
    if (!*acc) {
        *acc = ferry_tensor_retain(g);
        return FERRY_OK;
    }
    ferry_tensor *s = ferry_add(*acc, g);
    if (!s)
        return ferry_last_status();
    ferry_tensor_release(*acc);
    *acc = s;
    return FERRY_OK;
}

/* A gradient to keep as .grad: g itself when nobody else can see or change it. */
static ferry_tensor *owned_grad(ferry_tensor *g, bool create_graph)
{
    if (create_graph)
        return ferry_tensor_retain(g);
    if (atomic_load(&g->refs) == 1 && atomic_load(&g->storage->refs) == 1 && !g->grad_fn &&
        ferry__is_contiguous(g->ndim, g->shape, g->strides))
        return ferry_tensor_retain(g);
    return ferry_tensor_clone(g);
}

static ferry_status store_grad(ferry_grad_slot *slot, ferry_tensor *g, bool create_graph)
{
    if (!slot->grad) {
        slot->grad = owned_grad(g, create_graph);
        return slot->grad ? FERRY_OK : ferry_last_status();
    }
    if (!create_graph && !slot->grad->grad_fn && !slot->grad->requires_grad)
        return ferry_add_out(slot->grad, slot->grad, g);
    ferry_tensor *s = ferry_add(slot->grad, g);
    if (!s)
        return ferry_last_status();
    ferry_tensor_release(slot->grad);
    slot->grad = s;
    return FERRY_OK;
}

/* g in the dtype and shape the input had (promotion and broadcasting undone). */
static ferry_tensor *fit_to_input(ferry_tensor *g, const edge *e)
{
    ferry_tensor *r = ferry_tensor_retain(g);
    if (r->dtype != e->dtype) {
        ferry_tensor *c = ferry_tensor_to_dtype(r, e->dtype);
        ferry_tensor_release(r);
        if (!(r = c))
            return NULL;
    }
    ferry_tensor *s = ferry__sum_to(r, e->ndim, e->shape);
    ferry_tensor_release(r);
    return s;
}

static bool is_input(ferry_tensor *const *inputs, int n_inputs, const ferry_tensor *t, int *which)
{
    for (int j = 0; j < n_inputs; j++)
        if (inputs[j] == t) {
            *which = j;
            return true;
        }
    return false;
}

/* Runs backward from outputs. With `captured` (autograd.grad), the gradients of
 * `inputs` are summed there and no .grad is touched; otherwise they accumulate into
 * leaves and retained tensors. */
static ferry_status run_backward(int n_out, ferry_tensor *const *outputs,
                                 ferry_tensor *const *seeds, bool retain_graph, bool create_graph,
                                 int n_in, ferry_tensor *const *inputs, ferry_tensor **captured)
{
    graph g = {0};
    ferry_status st = FERRY_OK;
    long *order = NULL;
    ferry_tensor **roots_grad = calloc((size_t)n_out + 1, sizeof *roots_grad);
    if (!roots_grad)
        return ferry__error(FERRY_ERR_OUT_OF_MEMORY, "backward: out of host memory");

    for (int i = 0; i < n_out && st == FERRY_OK; i++) {
        ferry_tensor *t = outputs[i];
        if ((st = ferry__check_tensor(t, "backward")) != FERRY_OK)
            break;
        if (!t->requires_grad) {
            st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                              "element %d of tensors does not require grad and does not have a "
                              "grad_fn",
                              i);
            break;
        }
        ferry_tensor *seed = seeds ? seeds[i] : NULL;
        if (!seed) {
            if (ferry__numel(t->ndim, t->shape) != 1) {
                st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                  "grad can be implicitly created only for scalar outputs");
                break;
            }
            char dev[32];
            ferry__tensor_device_str(t, dev);
            roots_grad[i] = ferry_ones(t->dtype, t->ndim, t->shape, dev);
        } else {
            if ((st = ferry__check_tensor(seed, "backward")) != FERRY_OK)
                break;
            bool same = seed->ndim == t->ndim;
            for (int d = 0; same && d < t->ndim; d++)
                same = seed->shape[d] == t->shape[d];
            if (!same) {
                char a[512], b[512];
                sizes_desc(seed->ndim, seed->shape, a, sizeof a);
                sizes_desc(t->ndim, t->shape, b, sizeof b);
                st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                  "Mismatch in shape: grad_output[%d] has a shape of "
                                  "ferry.Size(%s) and output[%d] has a shape of ferry.Size(%s).",
                                  i, a, i, b);
                break;
            }
            if ((st = ferry__check_same_device(t, seed)) != FERRY_OK)
                break;
            roots_grad[i] = seed->dtype == t->dtype ? ferry_tensor_retain(seed)
                                                    : ferry_tensor_to_dtype(seed, t->dtype);
        }
        if (!roots_grad[i])
            st = ferry_last_status();
    }
    for (int j = 0; st == FERRY_OK && j < n_in; j++) {
        if ((st = ferry__check_tensor(inputs[j], "autograd.grad")) != FERRY_OK)
            break;
        if (!inputs[j]->requires_grad)
            st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                              "One of the differentiated Tensors does not require grad");
    }

    /* Every node reachable from the outputs, with the number of edges into it. */
    for (int i = 0; st == FERRY_OK && i < n_out; i++) {
        ferry_node *root = outputs[i]->grad_fn;
        long idx;
        if (!root || graph_find(&g, root) >= 0)
            continue;
        size_t first = g.len;
        if ((st = graph_add(&g, root, &idx)) != FERRY_OK)
            break;
        for (size_t k = first; st == FERRY_OK && k < g.len; k++) {
            ferry_node *n = g.tasks[k].n;
            for (int e = 0; e < n->n_inputs; e++) {
                ferry_node *c = n->in[e].fn;
                if (!c)
                    continue;
                long ci = graph_find(&g, c);
                if (ci < 0 && (st = graph_add(&g, c, &ci)) != FERRY_OK)
                    break;
                g.tasks[ci].deps++;
            }
        }
    }
    /* Kahn's order: a node runs after every node that feeds its gradient. */
    if (st == FERRY_OK && g.len > 0) {
        order = malloc(g.len * sizeof *order);
        int *deps = malloc(g.len * sizeof *deps);
        if (!order || !deps) {
            free(deps);
            st = ferry__error(FERRY_ERR_OUT_OF_MEMORY, "backward: out of host memory");
        } else {
            size_t head = 0, tail = 0;
            for (size_t k = 0; k < g.len; k++) {
                deps[k] = g.tasks[k].deps;
                if (deps[k] == 0)
                    order[tail++] = (long)k;
            }
            while (head < tail) {
                ferry_node *n = g.tasks[order[head++]].n;
                for (int e = 0; e < n->n_inputs; e++)
                    if (n->in[e].fn) {
                        long ci = graph_find(&g, n->in[e].fn);
                        if (--deps[ci] == 0)
                            order[tail++] = ci;
                    }
            }
            free(deps);
        }
    }
    /* Which nodes lead to a requested input (all of them for backward()). */
    if (st == FERRY_OK) {
        for (long k = (long)g.len - 1; k >= 0; k--) {
            task *tk = &g.tasks[order[k]];
            ferry_node *n = tk->n;
            if (!captured) {
                tk->needed = true;
                continue;
            }
            int w;
            for (int j = 0; j < n_in && !tk->needed; j++)
                tk->needed = inputs[j]->grad_fn == n;
            for (int e = 0; e < n->n_inputs && !tk->needed; e++)
                tk->needed = (n->in[e].leaf && is_input(inputs, n_in, n->in[e].leaf, &w)) ||
                             (n->in[e].fn && g.tasks[graph_find(&g, n->in[e].fn)].needed);
        }
        for (int j = 0; captured && j < n_in; j++) {
            bool used = false;
            int w;
            if (inputs[j]->grad_fn)
                used = graph_find(&g, inputs[j]->grad_fn) >= 0;
            for (int i = 0; !used && i < n_out; i++)
                used = outputs[i] == inputs[j];
            for (size_t k = 0; !used && k < g.len; k++)
                for (int e = 0; e < g.tasks[k].n->n_inputs; e++)
                    if (g.tasks[k].n->in[e].leaf == inputs[j] &&
                        is_input(inputs, n_in, inputs[j], &w))
                        used = true;
            if (!used)
                st = ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                  "One of the differentiated Tensors appears to not have been "
                                  "used in the graph. Set allow_unused=True if this is the "
                                  "desired behavior.");
        }
    }

    bool prev_mode = ferry_set_grad_enabled(create_graph);
    /* Seeds: into their node, or straight to a leaf output. */
    for (int i = 0; st == FERRY_OK && i < n_out; i++) {
        ferry_tensor *t = outputs[i];
        int w;
        if (t->grad_fn) {
            st = accumulate(&g.tasks[graph_find(&g, t->grad_fn)].grad, roots_grad[i]);
        } else if (captured) {
            if (is_input(inputs, n_in, t, &w))
                st = accumulate(&captured[w], roots_grad[i]);
        } else {
            ferry_grad_slot *slot = slot_of(t);
            st = slot ? store_grad(slot, roots_grad[i], create_graph) : ferry_last_status();
        }
    }
    for (size_t k = 0; st == FERRY_OK && k < g.len; k++) {
        task *tk = &g.tasks[order[k]];
        ferry_node *n = tk->n;
        ferry_tensor *gout = tk->grad;
        tk->grad = NULL;
        if (!tk->needed || !gout) {
            ferry_tensor_release(gout);
            continue;
        }
        for (int j = 0; captured && j < n_in && st == FERRY_OK; j++)
            if (inputs[j]->grad_fn == n)
                st = accumulate(&captured[j], gout);
        if (!captured && n->retained && st == FERRY_OK)
            st = store_grad(n->retained, gout, create_graph);
        if (st == FERRY_OK && n->released && n->has_saved)
            st = ferry__error(FERRY_ERR_INVALID_ARGUMENT, "%s", second_backward_msg);
        ferry_tensor *grads[FERRY_NODE_MAX_INPUTS] = {NULL};
        if (st == FERRY_OK)
            st = n->backward(n, gout, grads);
        ferry_tensor_release(gout);
        for (int e = 0; e < n->n_inputs; e++) {
            edge *ed = &n->in[e];
            if (st != FERRY_OK || !grads[e] || (!ed->fn && !ed->leaf))
                continue;
            ferry_tensor *fit = fit_to_input(grads[e], ed);
            if (!fit) {
                st = ferry_last_status();
                continue;
            }
            int w;
            if (ed->fn) {
                task *child = &g.tasks[graph_find(&g, ed->fn)];
                if (child->needed)
                    st = accumulate(&child->grad, fit);
            } else if (captured) {
                if (is_input(inputs, n_in, ed->leaf, &w))
                    st = accumulate(&captured[w], fit);
            } else {
                ferry_grad_slot *slot = slot_of(ed->leaf);
                st = slot ? store_grad(slot, fit, create_graph) : ferry_last_status();
            }
            ferry_tensor_release(fit);
        }
        for (int e = 0; e < FERRY_NODE_MAX_INPUTS; e++)
            ferry_tensor_release(grads[e]);
        if (st == FERRY_OK && !retain_graph) {
            release_saved(n);
            n->released = true;
        }
    }
    ferry_set_grad_enabled(prev_mode);

    for (int i = 0; i < n_out; i++)
        ferry_tensor_release(roots_grad[i]);
    free(roots_grad);
    free(order);
    graph_free(&g);
    return st;
}

/* ---- public API ---- */

FERRY_API ferry_status ferry_backward(ferry_tensor *t, const ferry_tensor *grad, bool retain_graph)
{
    ferry_tensor *seed = (ferry_tensor *)grad;
    return run_backward(1, &t, &seed, retain_graph, false, 0, NULL, NULL);
}

FERRY_API ferry_status ferry_backward_ex(ferry_tensor *t, const ferry_tensor *grad,
                                         bool retain_graph, bool create_graph)
{
    ferry_tensor *seed = (ferry_tensor *)grad;
    return run_backward(1, &t, &seed, retain_graph || create_graph, create_graph, 0, NULL, NULL);
}

FERRY_API ferry_status ferry_autograd_grad(int n_outputs, ferry_tensor *const *outputs,
                                           ferry_tensor *const *grad_outputs, int n_inputs,
                                           ferry_tensor *const *inputs, ferry_tensor **grads,
                                           bool retain_graph, bool create_graph)
{
    if (grads && n_inputs > 0)
        memset(grads, 0, (size_t)n_inputs * sizeof *grads);
    if (n_outputs <= 0 || !outputs)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "autograd.grad: needs at least one output (n_outputs %d)", n_outputs);
    if (n_inputs <= 0 || !inputs || !grads)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "autograd.grad: needs at least one input and room for its gradient "
                            "(n_inputs %d%s)",
                            n_inputs, grads ? "" : ", grads NULL");
    ferry_status st = run_backward(n_outputs, outputs, grad_outputs, retain_graph, create_graph,
                                   n_inputs, inputs, grads);
    if (st != FERRY_OK) {
        for (int j = 0; j < n_inputs; j++) {
            ferry_tensor_release(grads[j]);
            grads[j] = NULL;
        }
        return st;
    }
    for (int j = 0; j < n_inputs; j++) {
        if (grads[j])
            continue;
        /* Reached, but no gradient flowed to it: zeros, as a sum over no paths. */
        char dev[32];
        ferry__tensor_device_str(inputs[j], dev);
        grads[j] = ferry_zeros(inputs[j]->dtype, inputs[j]->ndim, inputs[j]->shape, dev);
        if (!grads[j]) {
            st = ferry_last_status();
            for (int k = 0; k < n_inputs; k++) {
                ferry_tensor_release(grads[k]);
                grads[k] = NULL;
            }
            return st;
        }
    }
    return FERRY_OK;
}

FERRY_API ferry_tensor *ferry_tensor_grad(const ferry_tensor *t)
{
    if (!t || t->magic != FERRY_TENSOR_MAGIC || !t->grad_slot || !t->grad_slot->grad)
        return NULL;
    return ferry_tensor_retain(t->grad_slot->grad);
}

FERRY_API ferry_status ferry_tensor_set_grad(ferry_tensor *t, const ferry_tensor *grad)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_set_grad");
    if (st != FERRY_OK)
        return st;
    if (grad) {
        if ((st = ferry__check_tensor(grad, "ferry_tensor_set_grad")) != FERRY_OK)
            return st;
        if (grad == t)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "can't assign Variable as its own grad");
        if (grad->dtype != t->dtype)
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "attempting to assign a gradient with dtype 'ferry.%s' to a "
                                "tensor with dtype 'ferry.%s'. Please ensure that the gradient "
                                "and the tensor have the same dtype",
                                ferry_dtype_name(grad->dtype), ferry_dtype_name(t->dtype));
        if (grad->storage->backend != t->storage->backend) {
            return ferry__error(FERRY_ERR_WRONG_DEVICE,
                                "attempting to assign a gradient with device type '%s' to a "
                                "tensor with device type '%s'. Please ensure that the gradient "
                                "and the tensor are on the same device",
                                grad->storage->backend->name, t->storage->backend->name);
        }
        if (grad->storage->device != t->storage->device) {
            char a[32], b[32];
            return ferry__error(FERRY_ERR_WRONG_DEVICE,
                                "attempting to assign a gradient located on device %s to a "
                                "tensor located on device %s. Please ensure that the gradient "
                                "and the tensor are on the same device",
                                ferry__tensor_device_str(grad, a), ferry__tensor_device_str(t, b));
        }
        bool same = grad->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = grad->shape[d] == t->shape[d];
        if (!same) {
            char a[512], b[512];
            sizes_desc(grad->ndim, grad->shape, a, sizeof a);
            sizes_desc(t->ndim, t->shape, b, sizeof b);
            return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                                "attempting to assign a gradient of size '%s' to a tensor of "
                                "size '%s'. Please ensure that the gradient and the tensor are "
                                "the same size",
                                a, b);
        }
    }
    if (!grad && !t->grad_slot)
        return FERRY_OK;
    ferry_grad_slot *slot = slot_of(t);
    if (!slot)
        return ferry_last_status();
    ferry_tensor *old = slot->grad;
    slot->grad = grad ? ferry_tensor_retain((ferry_tensor *)grad) : NULL;
    ferry_tensor_release(old);
    return FERRY_OK;
}

FERRY_API ferry_status ferry_tensor_retain_grad(ferry_tensor *t)
{
    ferry_status st = ferry__check_tensor(t, "ferry_tensor_retain_grad");
    if (st != FERRY_OK)
        return st;
    if (!t->requires_grad)
        return ferry__error(FERRY_ERR_INVALID_ARGUMENT,
                            "can't retain_grad on Tensor that has requires_grad=False");
    if (!t->grad_fn || t->grad_fn->retained)
        return FERRY_OK; /* leaves keep their gradient anyway */
    ferry_grad_slot *slot = slot_of(t);
    if (!slot)
        return ferry_last_status();
    atomic_fetch_add_explicit(&slot->refs, 1, memory_order_relaxed);
    t->grad_fn->retained = slot;
    return FERRY_OK;
}

FERRY_API bool ferry_tensor_retains_grad(const ferry_tensor *t)
{
    return t && t->magic == FERRY_TENSOR_MAGIC && t->grad_fn && t->grad_slot &&
           t->grad_fn->retained == t->grad_slot;
}

FERRY_API bool ferry_tensor_is_leaf(const ferry_tensor *t)
{
    return t && t->magic == FERRY_TENSOR_MAGIC && !t->grad_fn;
}

FERRY_API const char *ferry_tensor_grad_fn_name(const ferry_tensor *t)
{
    if (!t || t->magic != FERRY_TENSOR_MAGIC || !t->grad_fn)
        return NULL;
    return t->grad_fn->name;
}

FERRY_API const void *ferry_tensor_grad_fn_id(const ferry_tensor *t)
{
    if (!t || t->magic != FERRY_TENSOR_MAGIC)
        return NULL;
    return t->grad_fn;
}
