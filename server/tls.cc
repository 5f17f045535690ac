// TLS material: PEM certificates and keys read and checked (OpenSSL) before the server listens, so
// a bad file is named at start instead of failing every handshake.
#include "server/internal/server.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace kingest::server {
namespace internal {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::unique_ptr<BIO, BioFree> memory_bio(const std::string& text) {
  if (text.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return nullptr;
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The first certificate of a PEM chain; nullptr when there is none.
std::unique_ptr<X509, X509Free> parse_certificate(const std::string& pem) {
  auto bio = memory_bio(pem);
  std::unique_ptr<X509, X509Free> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

// An unencrypted PEM private key; nullptr otherwise (the callback refuses to ask for a passphrase).
std::unique_ptr<EVP_PKEY, PkeyFree> parse_private_key(const std::string& pem) {
  auto bio = memory_bio(pem);
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, PkeyFree> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr)
                                              : nullptr);
  ERR_clear_error();
  return key;
}

absl::StatusOr<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("cannot read '", path, "'"));
  return text.str();
}

}  // namespace

absl::Status check_tls(const std::string& cert_pem, const std::string& key_pem) {
  if (cert_pem.empty() && key_pem.empty()) return absl::OkStatus();
  if (cert_pem.empty() || key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate chain and its private key");
  }
  auto cert = parse_certificate(cert_pem);
  if (!cert) return absl::InvalidArgumentError("TLS certificate: no PEM certificate found");
  auto key = parse_private_key(key_pem);
  if (!key) return absl::InvalidArgumentError("TLS private key: no unencrypted PEM private key found");
  bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) return absl::InvalidArgumentError("TLS private key does not match the certificate");
  return absl::OkStatus();
}

}  // namespace internal

absl::Status check_tls_pair(const std::string& cert_pem, const std::string& key_pem) {
  return internal::check_tls(cert_pem, key_pem);
}

absl::StatusOr<std::string> read_pem_certificate_chain(const std::string& path) {
  auto text = internal::read_text_file(path);
  if (!text.ok()) return text.status();
  if (!internal::parse_certificate(*text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
  }
  return text;
}

absl::StatusOr<std::string> read_pem_private_key(const std::string& path) {
  auto text = internal::read_text_file(path);
  if (!text.ok()) return text.status();
  if (!internal::parse_private_key(*text)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' holds no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"));
  }
  return text;
}

}  // namespace kingest::server
