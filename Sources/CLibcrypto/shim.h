#pragma once
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

/* String and composite macros Swift cannot import, as constants (the values are OpenSSL's own). */
static const char *const CLibcrypto_RSA_N = OSSL_PKEY_PARAM_RSA_N;
static const char *const CLibcrypto_RSA_E = OSSL_PKEY_PARAM_RSA_E;
static const char *const CLibcrypto_RSA_D = OSSL_PKEY_PARAM_RSA_D;
static const char *const CLibcrypto_RSA_FACTOR1 = OSSL_PKEY_PARAM_RSA_FACTOR1;
static const char *const CLibcrypto_RSA_FACTOR2 = OSSL_PKEY_PARAM_RSA_FACTOR2;
static const char *const CLibcrypto_RSA_EXPONENT1 = OSSL_PKEY_PARAM_RSA_EXPONENT1;
static const char *const CLibcrypto_RSA_EXPONENT2 = OSSL_PKEY_PARAM_RSA_EXPONENT2;
static const char *const CLibcrypto_RSA_COEFFICIENT1 = OSSL_PKEY_PARAM_RSA_COEFFICIENT1;
static const int CLibcrypto_EVP_PKEY_KEYPAIR = EVP_PKEY_KEYPAIR;
static const int CLibcrypto_EVP_PKEY_PUBLIC_KEY = EVP_PKEY_PUBLIC_KEY;
static const int CLibcrypto_RSA_PKCS1_PADDING = RSA_PKCS1_PADDING;
