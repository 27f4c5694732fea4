/* test-list.h - the one registry of blurd's tests, in the order the runner runs them.
 * Add a test by defining TEST_IMPL(name) in tests/test-MODULE.c and listing it here. */
#define BLURD_TEST_LIST(X)                                        \
    /* error */                                                   \
    X(error_codes_and_messages)                                   \
    /* kernels */                                                 \
    X(kernels_scalar_reference_by_hand)                           \
    X(kernels_simd_match_scalar_on_odd_shapes)                    \
    X(kernels_gemm_matches_naive_product)                         \
    /* net */                                                     \
    X(net_default_architecture)                                   \
    X(net_rejects_bad_specs)                                      \
    X(net_forward_matches_direct_convolution)                     \
    X(net_batch_equals_single_and_allocates_nothing)              \
    /* model */                                                   \
    X(model_create_defaults)                                      \
    X(model_save_load_round_trip_f32)                             \
    X(model_save_load_round_trip_f16)                             \
    X(model_half_conversion_exact)                                \
    X(model_metadata_round_trip)                                  \
    X(model_hash_is_sha256_of_file)                               \
    X(model_save_replaces_atomically)                             \
    X(model_load_open_errors)                                     \
    X(model_load_truncated)                                       \
    X(model_load_header_length_past_end)                          \
    X(model_load_header_not_json)                                 \
    X(model_load_metadata_missing)                                \
    X(model_load_offsets_past_end)                                \
    X(model_load_offsets_end_before_begin)                        \
    X(model_load_overlapping_tensors)                             \
    X(model_load_hole_in_data)                                    \
    X(model_load_missing_tensor)                                  \
    X(model_load_extra_tensor)                                    \
    X(model_load_wrong_shape)                                     \
    X(model_load_wrong_dtype)                                     \
    X(model_load_unknown_layer_spec)                              \
    X(model_load_nan_weight)                                      \
    X(model_load_inf_weight)                                      \
    X(model_load_bad_threshold)                                   \
    X(model_load_tile_size_mismatch)                              \
    X(model_load_bad_metadata_values)                             \
    X(net_forward_matches_python_reference)                       \
    /* image */                                                   \
    X(image_has_image_extension)                                  \
    X(image_resize_shape_and_range)                               \
    X(image_tiles_come_from_texture)                              \
    X(image_tiles_count_and_scale)                                \
    X(image_exif_orientation_applied)                             \
    X(image_grey_becomes_three_equal_channels)                    \
    X(image_alpha_flattened_on_white)                             \
    X(image_16bit_png)                                            \
    X(image_cmyk_jpeg)                                            \
    X(image_gif_first_frame)                                      \
    X(image_error_missing_file)                                   \
    X(image_error_empty_file)                                     \
    X(image_error_text_named_jpg)                                 \
    X(image_error_truncated_jpeg)                                 \
    X(image_error_truncated_png)                                  \
    X(image_error_decompression_bomb)                             \
    X(image_error_too_small)                                      \
    X(image_error_directory)                                      \
    X(image_error_unreadable)                                     \
    X(image_rejects_bad_options)                                  \
    X(image_concurrent_loads_agree)                               \
    X(image_formats_named_by_content)                             \
    /* store */                                                   \
    X(store_create_put_read)                                      \
    X(store_schema_version)                                       \
    X(store_journal_mode_wal)                                     \
    X(store_upsert_replaces)                                      \
    X(store_error_row)                                            \
    X(store_reopen_keeps_data)                                    \
    X(store_newer_schema_refused)                                 \
    X(store_garbage_refused)                                      \
    X(store_foreign_database_refused)                             \
    X(store_open_errors_name_the_path)                            \
    X(store_reader_during_write)                                  \
    /* pipeline */                                                \
    X(pipeline_combines_the_sharpest_quarter_of_tiles)            \
    X(pipeline_returns_every_path_once_and_applies_back_pressure) \
    /* cli (end to end, the real binary) */                       \
    X(cli_help_version_and_usage_errors)                          \
    X(cli_model_info_default_architecture)                        \
    X(cli_classify_without_model_says_so)                         \
    X(cli_classify_formats_and_order)                             \
    X(cli_classify_bad_files_are_reported_and_skipped)            \
    X(cli_classify_corrupt_model_is_refused)                      \
    X(cli_classify_files_from_stdin_and_database)                 \
    X(cli_classify_sample_data)
