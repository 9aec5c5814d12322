//! The code tables of the blockwise formats, bit for bit as in bitsandbytes 0.50.
//!
//! Only constants live here: no quantization logic. The values are stored as IEEE-754 bit patterns
//! so that no decimal rounding can creep in; `tests/quant/` checks them against the tables dumped
//! from bitsandbytes (`tests/fixtures/quant/make_fixtures.py`).

/// The 16 NF4 values (QLoRA paper, appendix E): quantiles of N(0, 1) normalised to [-1, 1], with
/// an exact zero at index 7. Sorted ascending.
pub const NF4_CODE: [f32; 16] = [
    f32::from_bits(0xbf800000), f32::from_bits(0xbf3239b1), f32::from_bits(0xbf066b30), f32::from_bits(0xbeca32a0),
    f32::from_bits(0xbe91a24d), f32::from_bits(0xbe3d353f), f32::from_bits(0xbdba7871), f32::from_bits(0x00000000),
    f32::from_bits(0x3da2faff), f32::from_bits(0x3e24cae3), f32::from_bits(0x3e7c04dd), f32::from_bits(0x3ead033a),
    f32::from_bits(0x3ee1a4b8), f32::from_bits(0x3f1007ab), f32::from_bits(0x3f3913b3), f32::from_bits(0x3f800000),
];

/// The 16 FP4 values of bitsandbytes (1 sign, 2 exponent, 1 mantissa bit, normalised by 12), in
/// code order (not sorted): index 8 is the second zero.
pub const FP4_CODE: [f32; 16] = [
    f32::from_bits(0x00000000), f32::from_bits(0x3baaaaab), f32::from_bits(0x3f2aaaab), f32::from_bits(0x3f800000),
    f32::from_bits(0x3eaaaaab), f32::from_bits(0x3f000000), f32::from_bits(0x3e2aaaab), f32::from_bits(0x3e800000),
    f32::from_bits(0x00000000), f32::from_bits(0xbbaaaaab), f32::from_bits(0xbf2aaaab), f32::from_bits(0xbf800000),
    f32::from_bits(0xbeaaaaab), f32::from_bits(0xbf000000), f32::from_bits(0xbe2aaaab), f32::from_bits(0xbe800000),
];

/// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True)`), used to store the
/// NF4 block scales in 8 bits (double quantization). Sorted ascending, `[-0.99297, 1.0]`.
pub const DYNAMIC_CODE: [f32; 256] = [
    f32::from_bits(0xbf7e3333), f32::from_bits(0xbf7a999a), f32::from_bits(0xbf770000), f32::from_bits(0xbf736666),
    f32::from_bits(0xbf6fcccd), f32::from_bits(0xbf6c3333), f32::from_bits(0xbf68999a), f32::from_bits(0xbf650000),
    f32::from_bits(0xbf616666), f32::from_bits(0xbf5dcccd), f32::from_bits(0xbf5a3333), f32::from_bits(0xbf56999a),
    f32::from_bits(0xbf530000), f32::from_bits(0xbf4f6666), f32::from_bits(0xbf4bcccd), f32::from_bits(0xbf483333),
    f32::from_bits(0xbf44999a), f32::from_bits(0xbf410000), f32::from_bits(0xbf3d6666), f32::from_bits(0xbf39cccd),
    f32::from_bits(0xbf363334), f32::from_bits(0xbf32999a), f32::from_bits(0xbf2f0000), f32::from_bits(0xbf2b6666),
    f32::from_bits(0xbf27cccd), f32::from_bits(0xbf243334), f32::from_bits(0xbf20999a), f32::from_bits(0xbf1d0000),
    f32::from_bits(0xbf196666), f32::from_bits(0xbf15cccd), f32::from_bits(0xbf123334), f32::from_bits(0xbf0e999a),
    f32::from_bits(0xbf0b0000), f32::from_bits(0xbf076666), f32::from_bits(0xbf03cccc), f32::from_bits(0xbf003333),
    f32::from_bits(0xbef93332), f32::from_bits(0xbef20000), f32::from_bits(0xbeeacccc), f32::from_bits(0xbee3999a),
    f32::from_bits(0xbedc6666), f32::from_bits(0xbed53333), f32::from_bits(0xbece0000), f32::from_bits(0xbec6cccc),
    f32::from_bits(0xbebf999a), f32::from_bits(0xbeb86666), f32::from_bits(0xbeb13333), f32::from_bits(0xbeaa0000),
    f32::from_bits(0xbea2cccc), f32::from_bits(0xbe9b999a), f32::from_bits(0xbe946666), f32::from_bits(0xbe8d3334),
    f32::from_bits(0xbe860000), f32::from_bits(0xbe7d9999), f32::from_bits(0xbe6f3333), f32::from_bits(0xbe60cccd),
    f32::from_bits(0xbe526666), f32::from_bits(0xbe440000), f32::from_bits(0xbe35999a), f32::from_bits(0xbe273333),
    f32::from_bits(0xbe18cccd), f32::from_bits(0xbe0a6666), f32::from_bits(0xbdf80000), f32::from_bits(0xbddb3334),
    f32::from_bits(0xbdc9eb85), f32::from_bits(0xbdc428f7), f32::from_bits(0xbdbe6667), f32::from_bits(0xbdb8a3d7),
    f32::from_bits(0xbdb2e148), f32::from_bits(0xbdad1eb8), f32::from_bits(0xbda75c2a), f32::from_bits(0xbda1999a),
    f32::from_bits(0xbd9bd70a), f32::from_bits(0xbd96147b), f32::from_bits(0xbd9051eb), f32::from_bits(0xbd8a8f5d),
    f32::from_bits(0xbd84cccd), f32::from_bits(0xbd7e147b), f32::from_bits(0xbd728f5d), f32::from_bits(0xbd670a3d),
    f32::from_bits(0xbd5b851f), f32::from_bits(0xbd500000), f32::from_bits(0xbd447ae1), f32::from_bits(0xbd38f5c3),
    f32::from_bits(0xbd2d70a3), f32::from_bits(0xbd21eb85), f32::from_bits(0xbd166667), f32::from_bits(0xbd0ae148),
    f32::from_bits(0xbcfeb852), f32::from_bits(0xbce7ae15), f32::from_bits(0xbcd0a3d7), f32::from_bits(0xbcb9999a),
    f32::from_bits(0xbca28f5d), f32::from_bits(0xbc8b851f), f32::from_bits(0xbc68f5c3), f32::from_bits(0xbc3ae148),
    f32::from_bits(0xbc1f3b64), f32::from_bits(0xbc160418), f32::from_bits(0xbc0ccccd), f32::from_bits(0xbc039581),
    f32::from_bits(0xbbf4bc6a), f32::from_bits(0xbbe24dd3), f32::from_bits(0xbbcfdf3b), f32::from_bits(0xbbbd70a4),
    f32::from_bits(0xbbab020d), f32::from_bits(0xbb989374), f32::from_bits(0xbb8624dd), f32::from_bits(0xbb676c8a),
    f32::from_bits(0xbb428f5c), f32::from_bits(0xbb1db22d), f32::from_bits(0xbaf1a9fc), f32::from_bits(0xbaa7ef9d),
    f32::from_bits(0xba7765ff), f32::from_bits(0xba59e83e), f32::from_bits(0xba3c6a80), f32::from_bits(0xba1eecc1),
    f32::from_bits(0xba016f01), f32::from_bits(0xb9c7e283), f32::from_bits(0xb98ce705), f32::from_bits(0xb923d70b),
    f32::from_bits(0xb8ba1f4b), f32::from_bits(0xb88aefb3), f32::from_bits(0xb8378034), f32::from_bits(0xb7b24206),
    f32::from_bits(0xb70205ff), f32::from_bits(0xb65a1a94), f32::from_bits(0xb513a3b7), f32::from_bits(0x00000000),
    f32::from_bits(0x3513a3b7), f32::from_bits(0x365a1a94), f32::from_bits(0x370205ff), f32::from_bits(0x37b24206),
    f32::from_bits(0x38378034), f32::from_bits(0x388aefb3), f32::from_bits(0x38ba1f4b), f32::from_bits(0x3923d70b),
    f32::from_bits(0x398ce705), f32::from_bits(0x39c7e283), f32::from_bits(0x3a016f01), f32::from_bits(0x3a1eecc1),
    f32::from_bits(0x3a3c6a80), f32::from_bits(0x3a59e83e), f32::from_bits(0x3a7765ff), f32::from_bits(0x3aa7ef9d),
    f32::from_bits(0x3af1a9fc), f32::from_bits(0x3b1db22d), f32::from_bits(0x3b428f5c), f32::from_bits(0x3b676c8a),
    f32::from_bits(0x3b8624dd), f32::from_bits(0x3b989374), f32::from_bits(0x3bab020d), f32::from_bits(0x3bbd70a4),
    f32::from_bits(0x3bcfdf3b), f32::from_bits(0x3be24dd3), f32::from_bits(0x3bf4bc6a), f32::from_bits(0x3c039581),
    f32::from_bits(0x3c0ccccd), f32::from_bits(0x3c160418), f32::from_bits(0x3c1f3b64), f32::from_bits(0x3c3ae148),
    f32::from_bits(0x3c68f5c3), f32::from_bits(0x3c8b851f), f32::from_bits(0x3ca28f5d), f32::from_bits(0x3cb9999a),
    f32::from_bits(0x3cd0a3d7), f32::from_bits(0x3ce7ae15), f32::from_bits(0x3cfeb852), f32::from_bits(0x3d0ae148),
    f32::from_bits(0x3d166667), f32::from_bits(0x3d21eb85), f32::from_bits(0x3d2d70a3), f32::from_bits(0x3d38f5c3),
    f32::from_bits(0x3d447ae1), f32::from_bits(0x3d500000), f32::from_bits(0x3d5b851f), f32::from_bits(0x3d670a3d),
    f32::from_bits(0x3d728f5d), f32::from_bits(0x3d7e147b), f32::from_bits(0x3d84cccd), f32::from_bits(0x3d8a8f5d),
    f32::from_bits(0x3d9051eb), f32::from_bits(0x3d96147b), f32::from_bits(0x3d9bd70a), f32::from_bits(0x3da1999a),
    f32::from_bits(0x3da75c2a), f32::from_bits(0x3dad1eb8), f32::from_bits(0x3db2e148), f32::from_bits(0x3db8a3d7),
    f32::from_bits(0x3dbe6667), f32::from_bits(0x3dc428f7), f32::from_bits(0x3dc9eb85), f32::from_bits(0x3ddb3334),
    f32::from_bits(0x3df80000), f32::from_bits(0x3e0a6666), f32::from_bits(0x3e18cccd), f32::from_bits(0x3e273333),
    f32::from_bits(0x3e35999a), f32::from_bits(0x3e440000), f32::from_bits(0x3e526666), f32::from_bits(0x3e60cccd),
    f32::from_bits(0x3e6f3333), f32::from_bits(0x3e7d9999), f32::from_bits(0x3e860000), f32::from_bits(0x3e8d3334),
    f32::from_bits(0x3e946666), f32::from_bits(0x3e9b999a), f32::from_bits(0x3ea2cccc), f32::from_bits(0x3eaa0000),
    f32::from_bits(0x3eb13333), f32::from_bits(0x3eb86666), f32::from_bits(0x3ebf999a), f32::from_bits(0x3ec6cccc),
    f32::from_bits(0x3ece0000), f32::from_bits(0x3ed53333), f32::from_bits(0x3edc6666), f32::from_bits(0x3ee3999a),
    f32::from_bits(0x3eeacccc), f32::from_bits(0x3ef20000), f32::from_bits(0x3ef93332), f32::from_bits(0x3f003333),
    f32::from_bits(0x3f03cccc), f32::from_bits(0x3f076666), f32::from_bits(0x3f0b0000), f32::from_bits(0x3f0e999a),
    f32::from_bits(0x3f123334), f32::from_bits(0x3f15cccd), f32::from_bits(0x3f196666), f32::from_bits(0x3f1d0000),
    f32::from_bits(0x3f20999a), f32::from_bits(0x3f243334), f32::from_bits(0x3f27cccd), f32::from_bits(0x3f2b6666),
    f32::from_bits(0x3f2f0000), f32::from_bits(0x3f32999a), f32::from_bits(0x3f363334), f32::from_bits(0x3f39cccd),
    f32::from_bits(0x3f3d6666), f32::from_bits(0x3f410000), f32::from_bits(0x3f44999a), f32::from_bits(0x3f483333),
    f32::from_bits(0x3f4bcccd), f32::from_bits(0x3f4f6666), f32::from_bits(0x3f530000), f32::from_bits(0x3f56999a),
    f32::from_bits(0x3f5a3333), f32::from_bits(0x3f5dcccd), f32::from_bits(0x3f616666), f32::from_bits(0x3f650000),
    f32::from_bits(0x3f68999a), f32::from_bits(0x3f6c3333), f32::from_bits(0x3f6fcccd), f32::from_bits(0x3f736666),
    f32::from_bits(0x3f770000), f32::from_bits(0x3f7a999a), f32::from_bits(0x3f7e3333), f32::from_bits(0x3f800000),
];
