/* ticket.h — the session ticket key ring (internal to src/tls).
 *
 * Two keys: the current one encrypts new tickets, the previous one still
 * decrypts (and asks for a fresh ticket). Each key is a 16-byte name,
 * AES-256-CBC key and HMAC-SHA256 key from the CSPRNG. Rotation happens
 * lazily when a ticket is issued after `rotation_ms`, or on request. One
 * ring is shared by all worker threads (a rwlock: readers copy the key
 * under the read lock) and handed from one store generation to the next. */
#ifndef TW_TLS_TICKET_H
#define TW_TLS_TICKET_H

#include <openssl/ssl.h>
#include <stdint.h>

struct tw_tickets;

int tw_tickets_new(uint64_t rotation_ms, struct tw_tickets **out);
struct tw_tickets *tw_tickets_acquire(struct tw_tickets *t);
void tw_tickets_release(struct tw_tickets *t); /* NULL ok */
void tw_tickets_set_rotation(struct tw_tickets *t, uint64_t rotation_ms);
void tw_tickets_rotate(struct tw_tickets *t);
/* The SSL_CTX_set_tlsext_ticket_key_evp_cb body for ring t. */
int tw_tickets_crypt(struct tw_tickets *t, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc);

#endif
