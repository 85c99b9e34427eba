/* registry_lua.h — the registry's Lua scripts, compiled into the server.
 *
 * Each script lives in its own file, server/lua/NAME.lua, with its ARGV and
 * its reply described at its top; scripts/embed-lua turns them into one C
 * file at build time (build/<variant>/server/registry_lua.c), each string
 * holding server/lua/prelude.lua (the helpers every script uses) followed by
 * the script, without full-line comments. registry.c loads them on every
 * connect (SCRIPT LOAD) and calls them with EVALSHA.
 *
 * A script added to server/lua is declared here too: the link then fails
 * when a declared script has no file.
 */
#ifndef LECTERN_REGISTRY_LUA_H
#define LECTERN_REGISTRY_LUA_H

extern const char registry_lua_bye[];
extern const char registry_lua_contacts_changed[];
extern const char registry_lua_contacts_set[];
extern const char registry_lua_heartbeat[];
extern const char registry_lua_hide[];
extern const char registry_lua_hello[];
extern const char registry_lua_join[];
extern const char registry_lua_leave[];
extern const char registry_lua_log_range[];
extern const char registry_lua_moderate[];
extern const char registry_lua_moderation_get[];
extern const char registry_lua_online[];
extern const char registry_lua_presence[];
extern const char registry_lua_publish[];
extern const char registry_lua_reap[];
extern const char registry_lua_redact[];
extern const char registry_lua_redact_undo[];
extern const char registry_lua_rooms_page[];
extern const char registry_lua_status_get[];
extern const char registry_lua_sync_room[];
extern const char registry_lua_sync_users[];
extern const char registry_lua_unwatch[];
extern const char registry_lua_user_rooms[];
extern const char registry_lua_user_sessions[];
extern const char registry_lua_watch[];

#endif
