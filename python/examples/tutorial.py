"""The two seed tutorials of ferry, step by step with `ferry` in place of `torch`:
"can't convert cuda:0 device type tensor to numpy" (moving a tensor between a device
and the host) and "tensor to NumPy array and back".

Runs on the first device found: cuda:0, else opencl:0, else the sim plugin's sim:0 (a
simulated device whose memory the host cannot read, so every step below behaves as it
does on a GPU).
"""
import numpy as np

import ferry

if ferry.cuda.is_available():
    device = "cuda:0"
elif ferry.opencl.is_available():
    device = "opencl:0"
else:
    device = "sim:0"
print(f"device: {device}")

# ---------------------------------------------------------------------------------------
# Part 1: a tensor on a device cannot become a NumPy array until it is copied to the host.
# ---------------------------------------------------------------------------------------

# Create a tensor directly on the device.
a_ten = ferry.tensor([1, 2, 3.], device=device)
print(a_ten)

# NumPy arrays live in host memory, so numpy() refuses a device tensor.
try:
    a_ten.numpy()
except TypeError as e:
    print(f"TypeError: {e}")

# Copy the tensor to the CPU with to(); the original stays on the device.
a_ten = ferry.tensor([0.52, 0.42, 0.53], device=device)
a_cpu = a_ten.to("cpu")
print(a_cpu)
print(a_ten.device, "->", a_cpu.device)
print(a_cpu.numpy())

# cpu() is the shorthand for to("cpu"); cuda() (or opencl()) copies to the GPU.
a_cpu = a_ten.cpu()
print(a_cpu.numpy())
if device.startswith("cuda"):
    a_gpu = a_cpu.cuda()
elif device.startswith("opencl"):
    a_gpu = a_cpu.opencl()
else:
    a_gpu = a_cpu.to(device)
print(a_gpu)

# ---------------------------------------------------------------------------------------
# Part 2: NumPy to ferry and back.
# ---------------------------------------------------------------------------------------

# NumPy to ferry: from_numpy shares the array's memory; np.eye gives float64.
x = np.eye(3)
print(ferry.from_numpy(x))

# Change the data type with type().
x = np.eye(3)
print(ferry.from_numpy(x).type(ferry.float32))

# Send the tensor to a device with to().
x = np.eye(3)
print(ferry.from_numpy(x).to(device))

# ferry to NumPy: a CPU tensor without gradients converts directly, without a copy.
x = ferry.eye(3)
print(x.numpy())

# A tensor that requires grad must be detached first.
x = ferry.eye(3)
x.requires_grad = True
try:
    x.numpy()
except RuntimeError as e:
    print(f"RuntimeError: {e}")
print(x.detach().numpy())

# On a device: detach, copy to the CPU, then convert.
x = ferry.eye(3, device=device)
x.requires_grad = True
print(x.detach().to("cpu").numpy())
