"""Published NDS example shared by tests/test_nds.py and tests/test_nds_files.py."""

# NNI's NDS example (microsoft/nni, docs/en_US/NAS/BenchmarksExample.ipynb): an Amoeba-space
# network of width 32, depth 12, no auxiliary head, 4.190314 M parameters; its cell_spec
# written back in NDS's genotype layout.
NDS_AMOEBA_SAMPLE = {
    "normal": [["avg_pool_3x3", 0], ["conv_7x1_1x7", 1], ["sep_conv_3x3", 2], ["sep_conv_5x5", 0],
               ["dil_sep_conv_3x3", 2], ["dil_sep_conv_3x3", 2], ["skip_connect", 4], ["dil_sep_conv_3x3", 4],
               ["conv_7x1_1x7", 2], ["sep_conv_3x3", 4]],
    "normal_concat": [3, 5, 6],
    "reduce": [["avg_pool_3x3", 0], ["dil_sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 0],
               ["skip_connect", 2], ["sep_conv_7x7", 0], ["conv_7x1_1x7", 4], ["skip_connect", 4],
               ["conv_7x1_1x7", 0], ["conv_7x1_1x7", 5]],
    "reduce_concat": [3, 6],
}
