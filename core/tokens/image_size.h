/* Image input tokens by OpenAI's documented rule, and the pixel size of an
 * image sent inline as a base64 data URL (PNG, GIF, JPEG, WebP). */
#ifndef SLUICE_TOKENS_IMAGE_SIZE_H
#define SLUICE_TOKENS_IMAGE_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* detail high/auto: fit in 2048x2048, shortest side down to 768, then 170
 * per 512 px tile plus 85. */
uint64_t tok_image_tokens(unsigned width, unsigned height);

/* Fills *w, *h from "data:image/...;base64,..." (len bytes); leaves them
 * 0 when the URL is remote or the header is not understood. */
void tok_image_size_from_data_url(const char *url, size_t len, unsigned *w,
                                  unsigned *h);

#endif
