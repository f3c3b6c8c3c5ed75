<%--
  GET /jw/web/login: the login form, posting j_username/j_password to /jw/j_spring_security_check.
--%><%@ page session="false" contentType="text/html; charset=UTF-8" trimDirectiveWhitespaces="true" %><%@ include file="/WEB-INF/jspf/standin.jspf" %><%
    String ctx = request.getContextPath();
    boolean failed = request.getParameter("login_error") != null;
%><!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Joget DX - Login (stand-in)</title>
<style>body{font-family:sans-serif;margin:3em}label{display:block;margin:.5em 0}.error{color:#b00}</style>
</head>
<body>
<h1>Joget DX</h1>
<p>Stand-in node <span id="nodeName"><%= html(nodeName()) %></span></p>
<% if (failed) { %><div id="loginError" class="error">Invalid username or password.</div><% } %>
<form id="loginForm" name="loginForm" method="post" action="<%= html(ctx) %>/j_spring_security_check">
<label>Username <input type="text" id="j_username" name="j_username" autocomplete="username"></label>
<label>Password <input type="password" id="j_password" name="j_password" autocomplete="current-password"></label>
<input type="submit" id="submit" value="Login">
</form>
</body>
</html>
