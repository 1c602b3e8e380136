#ifndef TIDEMARK_CLIBPQ_SHIM_H
#define TIDEMARK_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#include <poll.h>

// libpq's PG_DIAG_* macros are character literals, which Swift cannot import.
static const int tidemark_diag_sqlstate = PG_DIAG_SQLSTATE;
static const int tidemark_diag_message_primary = PG_DIAG_MESSAGE_PRIMARY;
static const int tidemark_diag_message_detail = PG_DIAG_MESSAGE_DETAIL;
static const int tidemark_diag_message_hint = PG_DIAG_MESSAGE_HINT;
#endif
