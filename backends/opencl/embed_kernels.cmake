# Writes OUTPUT, a C file holding the kernel SOURCES ('|'-separated paths) concatenated
# as one byte array, ocl_kernel_source, each file behind a #line so build logs name it.
# Bytes rather than a string literal: the kernels are full of backslashes and quotes.
string(REPLACE "|" ";" files "${SOURCES}")
set(text "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  file(READ "${f}" content)
  string(APPEND text "#line 1 \"${name}\"\n${content}\n")
endforeach()
get_filename_component(out_dir "${OUTPUT}" DIRECTORY)
file(WRITE "${out_dir}/ocl_kernel_source.cl" "${text}")
file(READ "${out_dir}/ocl_kernel_source.cl" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 row)
string(REGEX REPLACE "(${row})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
  "/* Generated from backends/kernels by backends/opencl/embed_kernels.cmake; do not edit. */\n"
  "#include <stddef.h>\n\n"
  "__attribute__((visibility(\"hidden\"))) const char ocl_kernel_source[] = {\n    "
  "${bytes}0x00};\n"
  "__attribute__((visibility(\"hidden\"))) const size_t ocl_kernel_source_len =\n"
  "    sizeof ocl_kernel_source - 1;\n")
# Only a changed source touches the output, so the plugin is not relinked needlessly.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
