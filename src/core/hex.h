/* hex.h — the value of one hexadecimal digit, either case; -1 if c is not one. */
#ifndef TW_CORE_HEX_H
#define TW_CORE_HEX_H

static inline int tw_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
