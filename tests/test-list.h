/* test-list.h - the one registry of blurd's tests, in the order the runner runs them.
 * Add a test by defining TEST_IMPL(name) in tests/test-MODULE.c and listing it here. */
#define BLURD_TEST_LIST(X)                                                  \
    /* error */                                                             \
    X(error_codes_and_messages)                                             \
    /* kernels */                                                           \
    X(kernels_scalar_reference_by_hand)                                     \
    X(kernels_simd_match_scalar_on_odd_shapes)                              \
    X(kernels_gemm_matches_naive_product)                                   \
    /* net */                                                               \
    X(net_default_architecture)                                             \
    X(net_rejects_bad_specs)                                                \
    X(net_forward_matches_direct_convolution)                               \
    X(net_batch_equals_single_and_allocates_nothing)                        \
    /* backward */                                                          \
    X(kernels_backward_scalar_reference_by_hand)                            \
    X(kernels_backward_simd_match_scalar_on_odd_shapes)                     \
    X(backward_gradient_check_every_layer_kind)                             \
    X(backward_gradient_check_global_average_pool)                          \
    X(backward_gradient_check_standardize)                                  \
    X(backward_gradient_check_banded_convolution)                           \
    X(backward_threads_agree)                                               \
    X(backward_train_forward_matches_inference)                             \
    X(backward_weighted_loss_is_the_weighted_mean)                          \
    X(backward_refuses_untrainable_nets)                                    \
    X(backward_sgd_learns_a_separable_problem)                              \
    /* model */                                                             \
    X(model_create_defaults)                                                \
    X(model_save_load_round_trip_f32)                                       \
    X(model_save_load_round_trip_f16)                                       \
    X(model_standardize_round_trip_and_contrast)                            \
    X(model_half_conversion_exact)                                          \
    X(model_metadata_round_trip)                                            \
    X(model_hash_is_sha256_of_file)                                         \
    X(model_save_replaces_atomically)                                       \
    X(model_load_open_errors)                                               \
    X(model_load_truncated)                                                 \
    X(model_load_header_length_past_end)                                    \
    X(model_load_header_not_json)                                           \
    X(model_load_metadata_missing)                                          \
    X(model_load_offsets_past_end)                                          \
    X(model_load_offsets_end_before_begin)                                  \
    X(model_load_overlapping_tensors)                                       \
    X(model_load_hole_in_data)                                              \
    X(model_load_missing_tensor)                                            \
    X(model_load_extra_tensor)                                              \
    X(model_load_wrong_shape)                                               \
    X(model_load_wrong_dtype)                                               \
    X(model_load_unknown_layer_spec)                                        \
    X(model_load_nan_weight)                                                \
    X(model_load_inf_weight)                                                \
    X(model_load_bad_threshold)                                             \
    X(model_load_tile_size_mismatch)                                        \
    X(model_load_bad_metadata_values)                                       \
    X(model_extras_round_trip_and_refusals)                                 \
    X(net_forward_matches_python_reference)                                 \
    /* image */                                                             \
    X(image_has_image_extension)                                            \
    X(image_resize_shape_and_range)                                         \
    X(image_tiles_come_from_texture)                                        \
    X(image_tiles_count_and_scale)                                          \
    X(image_exif_orientation_applied)                                       \
    X(image_grey_becomes_three_equal_channels)                              \
    X(image_alpha_flattened_on_white)                                       \
    X(image_16bit_png)                                                      \
    X(image_cmyk_jpeg)                                                      \
    X(image_gif_first_frame)                                                \
    X(image_error_missing_file)                                             \
    X(image_error_empty_file)                                               \
    X(image_error_text_named_jpg)                                           \
    X(image_error_truncated_jpeg)                                           \
    X(image_error_truncated_png)                                            \
    X(image_error_damaged_jpeg_data)                                        \
    X(image_error_decompression_bomb)                                       \
    X(image_error_too_small)                                                \
    X(image_error_directory)                                                \
    X(image_error_unreadable)                                               \
    X(image_rejects_bad_options)                                            \
    X(image_concurrent_loads_agree)                                         \
    X(image_formats_named_by_content)                                       \
    /* store */                                                             \
    X(store_create_put_read)                                                \
    X(store_schema_version)                                                 \
    X(store_journal_mode_wal)                                               \
    X(store_upsert_replaces)                                                \
    X(store_error_row)                                                      \
    X(store_reopen_keeps_data)                                              \
    X(store_newer_schema_refused)                                           \
    X(store_garbage_refused)                                                \
    X(store_foreign_database_refused)                                       \
    X(store_open_errors_name_the_path)                                      \
    X(store_reader_during_write)                                            \
    X(store_migrates_version_1)                                             \
    X(store_lookup)                                                         \
    X(store_move_intents)                                                   \
    /* watch */                                                             \
    X(watch_file_reported_once_after_settle)                                \
    X(watch_slow_writer_reported_once_after_close)                          \
    X(watch_temp_file_renamed_reported_once)                                \
    X(watch_hard_link_taken_as_arrival)                                     \
    X(watch_moved_in_from_outside)                                          \
    X(watch_new_nested_folders_with_files)                                  \
    X(watch_excluded_folders_ignored)                                       \
    X(watch_burst_of_300_files_each_reported_once)                          \
    X(watch_two_roots_not_recursive)                                        \
    X(watch_stop_inside_callback)                                           \
    X(watch_scan_reports_existing_files_and_calls_done)                     \
    X(watch_scan_lets_recently_written_files_settle)                        \
    X(watch_deleted_subfolder_breaks_nothing)                               \
    X(watch_renamed_subfolder_followed)                                     \
    X(watch_root_lost_and_found_again)                                      \
    X(watch_queue_overflow_rescans)                                         \
    X(watch_start_errors_name_the_path)                                     \
    /* sort */                                                              \
    X(sort_move_simple)                                                     \
    X(sort_move_collision_numbering)                                        \
    X(sort_move_vanished_source)                                            \
    X(sort_move_creates_destination)                                        \
    X(sort_move_symlink_and_directory)                                      \
    X(sort_move_across_file_systems)                                        \
    X(sort_move_recorded_sets_moved_to)                                     \
    X(sort_move_without_rename_noreplace)                                   \
    X(sort_recover_before_rename_rolls_back)                                \
    X(sort_recover_after_rename_marks_done)                                 \
    X(sort_recover_copy_complete_finishes)                                  \
    X(sort_recover_half_copy_removed)                                       \
    X(sort_recover_vanished_forgotten)                                      \
    /* config */                                                            \
    X(config_defaults)                                                      \
    X(config_full_file_every_key)                                           \
    X(config_shipped_example_parses)                                        \
    X(config_error_unknown_key)                                             \
    X(config_error_unknown_section)                                         \
    X(config_error_bad_boolean)                                             \
    X(config_error_bad_number)                                              \
    X(config_error_threshold_out_of_range)                                  \
    X(config_error_syntax)                                                  \
    X(config_error_first_error_wins)                                        \
    X(config_error_missing_file)                                            \
    X(config_overrides_replace_file_values)                                 \
    X(config_finish_errors)                                                 \
    X(config_finish_resolves_folders_and_workers)                           \
    /* train */                                                             \
    X(adam_matches_the_papers_algorithm)                                    \
    X(adam_first_step_and_convergence)                                      \
    X(train_tile_weights_follow_the_sharpest_quarter)                       \
    X(train_augment_turns_and_lowers_contrast_about_the_mean)               \
    X(train_separable_set_to_full_accuracy_and_saved_model_scores_the_same) \
    X(train_resumed_run_matches_an_uninterrupted_one)                       \
    X(train_tiles_run_with_contrast_resumes_identically)                    \
    X(train_checkpoint_versions_and_contrast_value)                         \
    X(train_validation_of_one_class_records_no_balanced_figures)            \
    X(train_command_bad_data_and_usage)                                     \
    X(train_interrupt_saves_a_checkpoint)                                   \
    /* recipe */                                                            \
    X(recipe_refuses_reserved_packages)                                     \
    X(recipe_independent_photos_are_reserved_ones_only)                     \
    X(recipe_more_photos_are_allowed_and_new)                               \
    X(recipe_leaves_out_soft_photos)                                        \
    X(recipe_side_by_side_pictures)                                         \
    X(recipe_hard_cases_reports_both_methods)                               \
    X(recipe_make_set_reuses_only_the_same_set)                             \
    /* metrics */                                                           \
    X(metrics_confusion_accuracy_balanced_accuracy)                         \
    X(metrics_auc_by_hand_with_ties)                                        \
    X(metrics_best_threshold_by_hand)                                       \
    X(metrics_steady_threshold_prefers_a_broad_good_range)                  \
    X(metrics_degenerate_sets)                                              \
    /* laplacian */                                                         \
    X(laplacian_variance_by_hand)                                           \
    X(laplacian_blur_lowers_the_variance)                                   \
    X(laplacian_score_file_blurred_is_lower)                                \
    X(laplacian_grey_decode_size_and_values)                                \
    /* dataset */                                                           \
    X(dataset_masks_normalised_with_the_right_support)                      \
    X(dataset_read_lists_labels_and_sources)                                \
    X(dataset_read_errors_name_the_folder)                                  \
    X(dataset_split_by_source)                                              \
    X(dataset_synth_is_deterministic_by_seed)                               \
    X(dataset_synth_writes_labelled_blurred_and_sharp_sets)                 \
    X(dataset_synth_draws_again_images_unlike_their_label)                  \
    X(dataset_synth_refuses_to_overwrite_and_bad_sources)                   \
    X(dataset_cli_synth_end_to_end)                                         \
    /* pipeline */                                                          \
    X(pipeline_combines_the_sharpest_quarter_of_tiles)                      \
    X(pipeline_returns_every_path_once_and_applies_back_pressure)           \
    X(pipeline_batches_in_resize_mode_score_as_alone)                       \
    X(pipeline_laplacian_alone_and_beside_the_network)                      \
    /* cli (end to end, the real binary) */                                 \
    X(cli_help_version_and_usage_errors)                                    \
    X(cli_model_info_default_architecture)                                  \
    X(cli_classify_pixel_limit_is_exact)                                    \
    X(cli_results_that_cannot_be_written_fail_the_run)                      \
    X(cli_classify_without_model_says_so)                                   \
    X(cli_classify_formats_and_order)                                       \
    X(cli_classify_bad_files_are_reported_and_skipped)                      \
    X(cli_classify_corrupt_model_is_refused)                                \
    X(cli_classify_files_from_stdin_and_database)                           \
    X(cli_classify_sample_data)                                             \
    X(cli_classify_progress_line_only_when_asked)                           \
    /* eval (end to end, the real binary) */                                \
    X(eval_classify_laplacian_needs_no_model)                               \
    X(eval_model_and_laplacian_side_by_side)                                \
    X(eval_and_classify_json_keep_names_that_are_not_utf8)                  \
    X(eval_bad_data_and_usage)                                              \
    /* daemon (end to end, the real daemon process) */                      \
    X(daemon_judges_copies_moves_and_renamed_uploads)                       \
    X(daemon_scores_a_global_average_pooling_model_as_classify_does)        \
    X(daemon_slow_writer_is_judged_once_after_close)                        \
    X(daemon_file_half_written_at_start_up_waits_for_its_close)             \
    X(daemon_burst_of_1000_files_and_nested_folders)                        \
    X(daemon_catches_up_after_restart_and_skips_what_it_has)                \
    X(daemon_kill_9_while_sorting_loses_and_duplicates_nothing)             \
    X(daemon_reloads_on_sighup_and_keeps_working)                           \
    X(daemon_judges_again_a_file_changed_while_judged)                      \
    X(daemon_refuses_bad_configuration_and_missing_model)                   \
    X(daemon_recovers_from_inotify_queue_overflow)                          \
    X(daemon_speaks_the_systemd_notify_protocol_and_journal_priorities)     \
    X(daemon_unit_file_verifies)
